#!/usr/bin/env bash
# DCP's FileSystemWriter/Reader against tessera's DCP backend on N GPUs (or N
# CPU processes over Gloo), with the disk's dd bandwidth measured in the same
# run. What is measured: the docstring of bench/py_gpu_dcp_bench.py.
#
#   bash bench/py_gpu_dcp_bench.sh DIR [N [PY]] [-- MODEL OPTIONS...]
#
#   DIR   on the disk to measure; created, and removed at the end
#   N     ranks (even; default 4): tp-save, tp-load and fsdp-save on N, fsdp-load on N/2
#   PY    the python with torch, transformers and tessera importable (default python3;
#         e.g. PYTHONPATH=build-device/python for the package from a meson build)
#   MODEL OPTIONS  passed to every phase, e.g. a CPU test:
#         -- --layers 2 --hidden 64 --intermediate 128 --vocab 512
#
# Environment: DD_MIB (one dd stream, MiB; default 4096), DD_STREAMS (parallel
# dd streams; default 8), DD_STREAM_MIB (MiB per parallel stream; default 1024),
# MODEL_DIR (the random transformers model for tp_plan; default in /dev/shm),
# PHASES (which phases run, default "tp-save tp-load fsdp-save fsdp-load"; a
# load phase needs its save phase before it).
# Results: JSON lines, then the table, in DIR/../py-gpu-bench-results.txt.
# Peak disk use, full model: ~10.5 GB per DCP checkpoint plus tessera's, two of
# each at once (the sync ones kept for the loads, one async being timed).
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=$(realpath -m "${1:?usage: py_gpu_dcp_bench.sh DIR [N [PY]] [-- MODEL OPTIONS]}"); shift
N=4; PY=python3
if [[ $# -gt 0 && $1 != -- ]]; then N=$1; shift; fi
if [[ $# -gt 0 && $1 != -- ]]; then PY=$1; shift; fi
if [[ $# -gt 0 && $1 == -- ]]; then shift; fi
MODEL_ARGS=("$@")
(( N >= 2 && N % 2 == 0 )) || { echo "N must be even and at least 2" >&2; exit 2; }
DD_MIB=${DD_MIB:-4096}; DD_STREAMS=${DD_STREAMS:-8}; DD_STREAM_MIB=${DD_STREAM_MIB:-1024}
if [[ -z ${MODEL_DIR:-} ]]; then
  MODEL_DIR=$DIR/hf-model
  [[ -d /dev/shm && -w /dev/shm ]] && MODEL_DIR=/dev/shm/py-gpu-bench-model-$$
fi
RESULTS="$(dirname "$DIR")/py-gpu-bench-results.txt"
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1

rm -rf "$DIR" "$MODEL_DIR"; mkdir -p "$DIR"
trap 'rm -rf "$DIR" "$MODEL_DIR"' EXIT
gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 || true)
printf '{"scenario": "run", "date": "%s", "ranks": %d, "gpu": "%s", "model_args": "%s"}\n' \
  "$(date -u +%FT%TZ)" "$N" "${gpu:-none}" "${MODEL_ARGS[*]}" > "$RESULTS"

drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true; }
now() { date +%s.%N; }
# record OP STREAMS MIB_PER_STREAM T0 T1: one JSON line for a dd measurement
record() {
  awk -v op="$1" -v s="$2" -v mib="$3" -v t0="$4" -v t1="$5" 'BEGIN {
    printf "{\"scenario\": \"dd\", \"op\": \"%s\", \"streams\": %d, \"bytes\": %d, \"seconds\": %.4f}\n",
           op, s, s * mib * 1048576, t1 - t0 }' | tee -a "$RESULTS"
}
# dd_round: direct-I/O write then read, one stream of DD_MIB, then DD_STREAMS streams in parallel
dd_round() {
  local t0 i
  t0=$(now); dd if=/dev/zero of="$DIR/dd-0" bs=16M count=$((DD_MIB / 16)) oflag=direct conv=fsync status=none
  record write1 1 "$DD_MIB" "$t0" "$(now)"
  drop_caches
  t0=$(now); dd if="$DIR/dd-0" of=/dev/null bs=16M iflag=direct status=none
  record read1 1 "$DD_MIB" "$t0" "$(now)"
  rm -f "$DIR"/dd-*
  t0=$(now)
  for ((i = 0; i < DD_STREAMS; i++)); do
    dd if=/dev/zero of="$DIR/dd-$i" bs=16M count=$((DD_STREAM_MIB / 16)) oflag=direct conv=fsync status=none &
  done; wait
  record write_par "$DD_STREAMS" "$DD_STREAM_MIB" "$t0" "$(now)"
  drop_caches
  t0=$(now)
  for ((i = 0; i < DD_STREAMS; i++)); do dd if="$DIR/dd-$i" of=/dev/null bs=16M iflag=direct status=none & done; wait
  record read_par "$DD_STREAMS" "$DD_STREAM_MIB" "$t0" "$(now)"
  rm -f "$DIR"/dd-*
}
# phase RANKS NAME: one torchrun. A phase that logged its end but exited non-zero
# (torch 2.11's Gloo teardown aborts now and then at exit) is kept, with a warning.
phase() {
  local n=$1 name=$2 rc=0
  "$PY" -m torch.distributed.run --standalone --nproc_per_node="$n" bench/py_gpu_dcp_bench.py \
    --dir "$DIR" --results "$RESULTS" --model-dir "$MODEL_DIR" --phase "$name" "${MODEL_ARGS[@]}" || rc=$?
  if (( rc != 0 )); then
    grep -q "\"scenario\": \"phase\", \"op\": \"$name\", \"done\": true" "$RESULTS" ||
      { echo "phase $name failed ($rc)" >&2; exit 1; }
    echo "warning: phase $name exited $rc after finishing its work (teardown)" >&2
  fi
}

PHASES=" ${PHASES:-tp-save tp-load fsdp-save fsdp-load} "
runs() { [[ $PHASES == *" $1 "* ]]; }
dd_round
runs tp-save && phase "$N" tp-save
runs tp-load && phase "$N" tp-load
rm -rf "$DIR/tp" "$MODEL_DIR"
runs fsdp-save && phase "$N" fsdp-save
runs fsdp-load && phase $((N / 2)) fsdp-load
rm -rf "$DIR/fsdp"
dd_round
"$PY" bench/py_gpu_dcp_bench.py --summary "$RESULTS" | tee -a "$RESULTS"
