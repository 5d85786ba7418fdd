#!/usr/bin/env bash
# The GPU benchmark: tessera against torch.distributed.checkpoint (DCP) on one
# GPU machine, in one run, on the same disk and on /dev/shm, next to raw dd.
#
#   bash bench/gpu_vs_dcp.sh [DISK_DIR]     (default ./.gpu-bench, on the disk to measure)
#
#   BENCH_BIN   where gpu_bench is (default build/bench)
#   TORCHRUN    torchrun to launch DCP's side (default: torchrun on PATH)
#   DD_GIB      size of the dd files (default 8)
#
# Needs about 30 GB free on DISK_DIR and 25 GB in /dev/shm at the peak;
# everything is removed at the end. Prints a table (bench/gpu_summary.py) and
# leaves the raw RESULT lines in DISK_DIR/../gpu-bench-results.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
DISK=$(realpath -m "${1:-.gpu-bench}")
SHM=/dev/shm/tessera-gpu-bench
BIN=${BENCH_BIN:-build/bench}
TORCHRUN=${TORCHRUN:-$(command -v torchrun)}
DD_GIB=${DD_GIB:-8}
RESULTS="$(dirname "$DISK")/gpu-bench-results.txt"
rm -rf "$DISK" "$SHM"; mkdir -p "$DISK" "$SHM"
trap 'rm -rf "$DISK" "$SHM"' EXIT
: > "$RESULTS"

drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true; }
# dd NAME ARGS...: times dd and prints a RESULT line with its bandwidth.
dd_time() {
  local what=$1; shift
  local t0 t1
  t0=$(date +%s.%N); dd "$@" status=none; t1=$(date +%s.%N)
  python3 -c "import sys; print('RESULT {\"phase\":\"dd\",\"what\":\"$what\",\"bytes\":%d,\"seconds\":%.4f}' % ($DD_GIB << 30, $t1 - $t0))"
}
raw_disk() {
  dd_time direct_write if=/dev/zero of="$DISK/dd" bs=64M count=$((DD_GIB * 16)) oflag=direct conv=fsync
  drop_caches
  dd_time direct_read if="$DISK/dd" of=/dev/null bs=64M iflag=direct
  rm -f "$DISK/dd"
}

{
  echo "# $(date -u +%FT%TZ) $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)"
  raw_disk
  "$TORCHRUN" --nproc_per_node=1 --master_port=$((29500 + RANDOM % 1000)) bench/gpu_dcp_side.py "$DISK" "$SHM" "$DISK"
  for where in disk shm; do
    root=$DISK/tessera; [[ $where == shm ]] && root=$SHM/tessera
    for comp in auto none; do
      "$BIN/gpu_bench" "$DISK/manifest.tsv" "$root" save "$comp" | sed "s/^RESULT {/RESULT {\"where\":\"$where\",/"
      "$BIN/gpu_bench" "$DISK/manifest.tsv" "$root" load | sed "s/^RESULT {/RESULT {\"where\":\"$where\",\"compression\":\"$comp\",/"
      rm -rf "$root"
    done
  done
  raw_disk
} 2>&1 | tee -a "$RESULTS"
python3 bench/gpu_summary.py "$RESULTS"
