#!/usr/bin/env bash
# `make bench`: raw disk bandwidth with dd, then tessera's store, distributed and codec
# benchmarks, all in one run, so that save and load can be stated as a
# fraction of what this disk does right now. Measurements on a shared or
# virtual machine drift from minute to minute, so dd runs both before and
# after the store benchmarks: ratios use the mean of the two, and the spread
# between them shows how much the disk drifted meanwhile.
#
#   BENCH_DIR  where the scratch directory goes (default /tmp); it must be on
#              the disk you want to measure (not tmpfs: O_DIRECT fails there)
#   BENCH_GIB  size of the dd files and of store_bench's and dist_bench's model (default 2)
#   BENCH_BIN  where the binaries are (default build/bench)
#   BENCH_SAVE_RANKS, BENCH_LOAD_RANKS
#              dist_bench's ranks (threads of one process): N save row
#              shards, M load column shards (default 4 and 2)
#
# Last, incremental_bench (dedup across checkpoints: fine-tuning, full
# training, the same state twice; no dd involved) with its own summary.
#
# Disk use peaks at about 2 x BENCH_GIB (incremental_bench's full-training
# scenario: a store with two checkpoints); everything is removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BENCH_BIN:-build/bench}
GIB=${BENCH_GIB:-2}
BASE=${BENCH_DIR:-/tmp}
SAVE_RANKS=${BENCH_SAVE_RANKS:-4}
LOAD_RANKS=${BENCH_LOAD_RANKS:-2}
[[ $GIB =~ ^[1-9][0-9]*$ ]] || { echo "BENCH_GIB must be a whole number of GiB" >&2; exit 2; }
[[ $SAVE_RANKS =~ ^[1-9][0-9]*$ && $LOAD_RANKS =~ ^[1-9][0-9]*$ ]] ||
  { echo "BENCH_SAVE_RANKS and BENCH_LOAD_RANKS must be positive whole numbers" >&2; exit 2; }
for b in store_bench dist_bench codec_bench incremental_bench; do
  [[ -x $BIN/$b ]] || { echo "$BIN/$b missing: build first (make build)" >&2; exit 2; }
done

mkdir -p "$BASE"
DIR=$(mktemp -d "$BASE/tessera-bench.XXXXXX")
trap 'rm -rf "$DIR"' EXIT
need_kb=$(( (2 * GIB + 1) * 1024 * 1024 ))
avail_kb=$(df -Pk "$DIR" | awk 'NR == 2 { print $4 }')
if (( avail_kb < need_kb )); then
  echo "only $((avail_kb / 1024)) MiB free in $DIR; need $((need_kb / 1024)) MiB (set BENCH_DIR or BENCH_GIB)" >&2
  exit 2
fi
RESULTS=$DIR/results
mkdir -p "$RESULTS"

# Other work on the machine skews every figure; say how busy it was.
loadavg() { echo "(load average $(cut -d' ' -f1 /proc/loadavg))"; }

echo "== tessera benchmarks: $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, $(uname -r)"
echo "== scratch: $DIR on $(df -P "$DIR" | awk 'NR == 2 { print $1 }') ($(findmnt -no FSTYPE -T "$DIR" 2>/dev/null || echo '?'))"
echo

# dd's summary line: "N bytes (...) copied, S s, R GB/s"; prints N/S in
# bytes per second, or 0 when dd failed (e.g. O_DIRECT unsupported).
dd_bps() {
  local out
  if out=$(LC_ALL=C dd "$@" 2>&1); then
    awk '/copied/ { for (i = 1; i <= NF; i++) if ($i == "copied,") { printf "%.0f\n", $1 / $(i + 1); exit } }' <<<"$out"
  else
    echo "dd $* failed: $(tail -1 <<<"$out")" >&2
    echo 0
  fi
}

# Runs the four dd measurements; writes "name bytes_per_second" lines to $1.
measure_dd() {
  local out=$1 count=$((GIB * 64)) f=$DIR/dd.tmp  # 16 MiB blocks
  {
    echo "direct_write $(dd_bps if=/dev/zero of="$f" bs=16M count=$count oflag=direct conv=fsync)"
    echo "direct_read $(dd_bps if="$f" of=/dev/null bs=16M iflag=direct)"
    # dd's direct read keeps one 16 MiB request in flight; load() reads
    # through the page cache from every core (with readahead), which a
    # virtual disk may serve much faster. A cold buffered read is the
    # like-for-like yardstick.
    LC_ALL=C dd if="$f" iflag=nocache count=0 status=none 2>/dev/null || true  # evict the file
    echo "buffered_read $(dd_bps if="$f" of=/dev/null bs=16M)"
    rm -f "$f"
    # Buffered + fsync is what save() does (write into the page cache,
    # fdatasync each pack): the like-for-like yardstick for save.
    echo "buffered_write $(dd_bps if=/dev/zero of="$f" bs=16M count=$count conv=fsync)"
    rm -f "$f"
  } >"$out"
  awk '{ printf "  %-16s %6.3f GiB/s\n", $1, $2 / 2^30 }' "$out"
}

echo "== dd before, $GIB GiB in 16 MiB blocks $(loadavg)"
measure_dd "$RESULTS/dd_before.txt"
echo

status=0
for comp in auto none; do
  echo "== store_bench --gib $GIB --compression $comp $(loadavg)"
  "$BIN/store_bench" "$DIR" --gib "$GIB" --compression "$comp" | tee "$RESULTS/store_$comp.txt" || status=1
  echo
done

# The same state saved by N ranks (row shards) and loaded by M (column
# shards); ranks are threads of this one process, see bench/README.md.
for comp in auto none; do
  echo "== dist_bench --gib $GIB --save-ranks $SAVE_RANKS --load-ranks $LOAD_RANKS --compression $comp $(loadavg)"
  "$BIN/dist_bench" "$DIR" --gib "$GIB" --save-ranks "$SAVE_RANKS" --load-ranks "$LOAD_RANKS" \
    --compression "$comp" | tee "$RESULTS/dist_$comp.txt" || status=1
  echo
done

echo "== dd after $(loadavg)"
measure_dd "$RESULTS/dd_after.txt"
echo

echo "== codec_bench $(loadavg)"
"$BIN/codec_bench" || status=1
echo

echo "== tessera against dd (same run; dd = mean of before and after)"
python3 - "$RESULTS" <<'EOF'
import json, sys
results = sys.argv[1]
GiB = 2**30

def read_dd(name):
    return {k: float(v) for k, v in (l.split() for l in open(f"{results}/{name}"))}

before, after = read_dd("dd_before.txt"), read_dd("dd_after.txt")
dd = {k: (before[k] + after[k]) / 2 if before[k] and after[k] else 0.0 for k in before}
for k in dd:
    print(f"  dd {k:15s} {dd[k] / GiB:.3f} GiB/s (before {before[k] / GiB:.3f}, after {after[k] / GiB:.3f})")
dw, dr, bw, br = dd["direct_write"], dd["direct_read"], dd["buffered_write"], dd["buffered_read"]

def pct(x, ref):
    return f"{100 * x / ref:.0f}%" if ref > 0 else "n/a"

summary = {"dd_bps": dd, "dd_before_bps": before, "dd_after_bps": after}
verdicts = []
for comp in ("auto", "none"):
    try:
        line = next(l for l in open(f"{results}/store_{comp}.txt") if l.startswith("{"))
    except (OSError, StopIteration):
        print(f"  store_bench --compression {comp}: no result")
        continue
    r = json.loads(line)
    save = r["logical_bytes"] / r["save_s"]
    written = r["written_bytes"] / r["save_s"]
    load = r["load"]["bytes_needed"] / r["load"]["s"]
    read = r["load"]["bytes_read"] / r["load"]["s"]
    print(f"  [{comp}] save {save / GiB:.3f} GiB/s of logical bytes = {pct(save, dw)} of direct write, "
          f"{pct(save, bw)} of buffered write+fsync (disk sees {written / GiB:.3f} GiB/s)")
    print(f"  [{comp}] load {load / GiB:.3f} GiB/s of logical bytes = {pct(load, dr)} of direct read, "
          f"{pct(load, br)} of cold buffered read (disk gives {read / GiB:.3f} GiB/s)")
    for key, label in (("reshard_verify", "verify on"), ("reshard_noverify", "verify off")):
        h = r[key]
        print(f"  [{comp}] column-half reshard, {label}: {h['bytes_needed'] / h['s'] / GiB:.3f} GiB/s, "
              f"read {h['bytes_read'] / h['bytes_needed']:.2f}x the bytes needed")
    if "verify_cold" in r:
        vc, rc, vw, rw = r["verify_cold"], r["read_cold"], r["verify_warm"], r["read_warm"]
        print(f"  [{comp}] verify cold {vc['gibps']:.3f} GiB/s of stored bytes vs reading the packs "
              f"{rc['gibps']:.3f} GiB/s = {r['verify_vs_read_cold']:.2f}x; warm {vw['gibps']:.3f} vs "
              f"{rw['gibps']:.3f} GiB/s = {r['verify_vs_read_warm']:.2f}x")
    for what, x, ref in (("save", save, dw), ("load", load, dr)):
        if ref > 0:
            verdicts.append(f"{what} [{comp}] >= 70% of dd direct: {'MET' if x >= 0.7 * ref else 'NOT MET'} "
                            f"({pct(x, ref)})")
    summary[comp] = {"save_bps": save, "save_written_bps": written, "load_bps": load, "load_read_bps": read,
                     "save_vs_direct_write": save / dw if dw else None,
                     "save_vs_buffered_write": save / bw if bw else None,
                     "load_vs_direct_read": load / dr if dr else None,
                     "load_vs_buffered_read": load / br if br else None,
                     "verify_vs_read_cold": r.get("verify_vs_read_cold"),
                     "verify_vs_read_warm": r.get("verify_vs_read_warm"), "ok": r["ok"]}
for comp in ("auto", "none"):
    try:
        line = next(l for l in open(f"{results}/dist_{comp}.txt") if l.startswith("{"))
    except (OSError, StopIteration):
        print(f"  dist_bench --compression {comp}: no result")
        continue
    r = json.loads(line)
    n, m = r["save_ranks"], r["load_ranks"]
    save = r["logical_bytes"] / r["save_s"]
    written = r["written_bytes"] / r["save_s"]
    load = r["load"]["bytes_needed"] / r["load"]["s"]
    read = r["load"]["bytes_read"] / r["load"]["s"]
    print(f"  [dist {comp}] save on {n} ranks {save / GiB:.3f} GiB/s of logical bytes = {pct(save, dw)} of direct write, "
          f"{pct(save, bw)} of buffered write+fsync (disk sees {written / GiB:.3f} GiB/s)")
    print(f"  [dist {comp}] load on {m} ranks (column shards) {load / GiB:.3f} GiB/s of logical bytes = "
          f"{pct(load, dr)} of direct read, {pct(load, br)} of cold buffered read "
          f"(disk gives {read / GiB:.3f} GiB/s, {r['load']['bytes_read'] / r['load']['bytes_needed']:.2f}x the bytes needed)")
    for what, x, ref in (("save", save, dw), ("load", load, dr)):
        if ref > 0:
            verdicts.append(f"dist {what} [{comp}] >= 70% of dd direct: {'MET' if x >= 0.7 * ref else 'NOT MET'} "
                            f"({pct(x, ref)})")
    summary[f"dist_{comp}"] = {"save_ranks": n, "load_ranks": m, "save_bps": save, "save_written_bps": written,
                               "load_bps": load, "load_read_bps": read,
                               "save_vs_direct_write": save / dw if dw else None,
                               "save_vs_buffered_write": save / bw if bw else None,
                               "load_vs_direct_read": load / dr if dr else None,
                               "load_vs_buffered_read": load / br if br else None, "ok": r["ok"]}
print("  targets: " + "; ".join(verdicts))
print(json.dumps({"bench": "run", **summary}))
EOF
echo

# Dedup across checkpoints (issue 4): each scenario next to a plain save of
# the same state in the same run, and the hashing yardstick; see README.
for comp in auto none; do
  echo "== incremental_bench --gib $GIB --compression $comp $(loadavg)"
  "$BIN/incremental_bench" "$DIR" --gib "$GIB" --compression "$comp" | tee "$RESULTS/incr_$comp.txt" || status=1
  echo
done

echo "== incremental saves against plain saves (same run)"
python3 - "$RESULTS" <<'EOF'
import json, sys
results = sys.argv[1]
GiB, MiB = 2**30, 2**20
verdicts, summary = [], {}

def met(ok):
    return "MET" if ok else "NOT MET"

for comp in ("auto", "none"):
    try:
        line = next(l for l in open(f"{results}/incr_{comp}.txt") if l.startswith("{"))
    except (OSError, StopIteration):
        print(f"  incremental_bench --compression {comp}: no result")
        verdicts.append(f"incremental [{comp}]: NO RESULT")
        continue
    r = json.loads(line)
    h = r["hash_s"]
    s1, s2, s3 = r["s1"], r["s2"], r["s3"]
    a = s1["a"]
    print(f"  [{comp}] {r['logical_bytes'] / GiB:.2f} GiB state; hashing it (XXH3-128, {r['threads']} threads) "
          f"{h:.3f} s = {r['logical_bytes'] / GiB / h:.1f} GiB/s; along the chunk grid with gathers {r['grid_hash_s']:.3f} s")
    b_mib = ", ".join(f"{b['written_bytes'] / MiB:.1f}" for b in s1["b"])
    b_s = ", ".join(f"{b['s']:.3f}" for b in s1["b"])
    print(f"  [{comp}] 1 fine-tune, {s1['steps']} steps: B_k wrote {b_mib} MiB "
          f"(at most {100 * s1['written_fraction']:.2f}% of logical) in {b_s} s; median {s1['median_b_s']:.3f} s = "
          f"{100 * s1['median_b_s'] / a['s']:.1f}% of full save A {a['s']:.3f} s, "
          f"{s1['median_b_s'] / s1['yardstick_s']:.2f}x hashing + median changed-only save "
          f"({h:.3f} + {s1['median_changed_s']:.3f} = {s1['yardstick_s']:.3f} s)")
    print(f"  [{comp}] 2 full training: B median {s2['median_incr_s']:.3f} s, plain median {s2['median_plain_s']:.3f} s; "
          f"B_i - mean(P_i, P_i+1) = {', '.join(f'{d:+.3f}' for d in s2['diff_s'])} s, "
          f"median {s2['median_diff_s']:+.3f} s vs hashing {h:.3f} s")
    print(f"  [{comp}] 3 same state: B {s3['b']['s']:.3f} s ({100 * s3['b']['s'] / s3['a']['s']:.1f}% of A "
          f"{s3['a']['s']:.3f} s), wrote {s3['b']['written_bytes']} bytes in {s3['b']['chunks_written']} chunks")
    verdicts += [f"1 [{comp}] B writes <= 2% of logical: {met(s1['bytes_met'])} ({100 * s1['written_fraction']:.2f}%)",
                 f"1 [{comp}] median B <= 1.5x (hashing + changed-only save): {met(s1['time_met'])} "
                 f"({s1['median_b_s'] / s1['yardstick_s']:.2f}x)",
                 f"2 [{comp}] B - plain <= hashing (median of {s2['rounds']}): {met(s2['met'])} "
                 f"({s2['median_diff_s']:+.3f} s vs {h:.3f} s)",
                 f"3 [{comp}] unchanged B writes nothing: {met(s3['met'])}"]
    summary[comp] = r
print("  targets:")
for v in verdicts:
    print("    " + v)
print(json.dumps({"bench": "incremental_run", **summary}))
EOF
exit $status
