"""Table for bench/gpu_vs_dcp.sh: reads its RESULT lines and prints times,
bandwidths, tessera's speed-up over DCP and the fraction of dd's direct
bandwidth (mean of the dd runs before and after)."""
import json, sys

rows = [json.loads(l.split("RESULT ", 1)[1]) for l in open(sys.argv[1]) if l.startswith("RESULT ")]
GiB = 2**30


def pick(**kv):
    return [r for r in rows if all(r.get(k) == v for k, v in kv.items())]


def one(**kv):
    found = pick(**kv)
    return found[0] if found else None


state = one(phase="state")["state_bytes"]
dd = {w: sum(r["bytes"] / r["seconds"] for r in pick(phase="dd", what=w)) / max(1, len(pick(phase="dd", what=w)))
      for w in ("direct_write", "direct_read")}
print(f"state: {state / GiB:.2f} GiB; dd direct write {dd['direct_write'] / 1e9:.2f} GB/s, "
      f"direct read {dd['direct_read'] / 1e9:.2f} GB/s (mean of {len(pick(phase='dd')) // 2} runs each)\n")
print(f"{'measurement':46s} {'seconds':>8s} {'GiB/s':>6s} {'of dd':>6s} {'DCP/tessera':>11s}")


def line(label, seconds, dcp_seconds=None, dd_key=None):
    if seconds is None:
        print(f"{label:46s} {'-':>8s}"); return
    bw = state / seconds
    of_dd = f"{bw / dd[dd_key] * 100:5.0f}%" if dd_key else ""
    speed = f"{dcp_seconds / seconds:10.2f}x" if dcp_seconds else ""
    print(f"{label:46s} {seconds:8.2f} {bw / GiB:6.2f} {of_dd:>6s} {speed:>11s}")


def t(r, key="total_s"):
    return r[key] if r else None


for where in ("disk", "shm"):
    dd_w = "direct_write" if where == "disk" else None
    dd_r = "direct_read" if where == "disk" else None
    d1, d8 = one(phase="dcp_save", where=where, threads=1), one(phase="dcp_save", where=where, threads=8)
    best_dcp = min(x["total_s"] for x in (d1, d8) if x)
    line(f"DCP save {where}, 1 thread", t(d1), None, dd_w)
    line(f"DCP save {where}, 8 threads", t(d8), None, dd_w)
    for comp in ("auto", "none"):
        for store, label in (("a", "1st (pins pool)"), ("b", "2nd")):
            r = one(phase="save", where=where, compression=comp, store=store)
            line(f"tessera save {where} {comp}, {label}: total", t(r), best_dcp, dd_w)
            line(f"tessera save {where} {comp}, {label}: blocked", t(r, "blocked_s"))
    dl = one(phase="dcp_load", where=where)
    line(f"DCP load {where}" + (" (cold cache)" if where == "disk" else ""), t(dl), None, dd_r)
    for comp in ("auto", "none"):
        r = one(phase="load", where=where, compression=comp)
        line(f"tessera load {where} {comp}" + (" (cold cache)" if where == "disk" else ""), t(r), t(dl), dd_r)
        if r and not r["bit_exact"]:
            print("   ^ NOT BIT-EXACT")
    print()
for n in (1, 2):
    r = one(phase="dcp_async_save", call=n)
    line(f"DCP async_save disk #{n}: blocked", t(r, "blocked_s"))
    line(f"DCP async_save disk #{n}: total", t(r), None, "direct_write")
print()
for r in pick(phase="save_memory") + pick(phase="load"):
    kind = "save (2 saves)" if r["phase"] == "save_memory" else f"load {r.get('compression')}"
    print(f"peak RSS tessera {r.get('where')} {kind}: {r['peak_rss_bytes'] / GiB:.2f} GiB "
          f"(after building the state: {r['rss_before_bytes'] / GiB:.2f} GiB)")
