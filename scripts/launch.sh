#!/usr/bin/env bash
# Starts N ranks of a native program with the environment torchrun would give
# them (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT), for machines
# without Python. Rank 0 hosts the TCPStore. Exits with the first non-zero
# status of any rank (all ranks are waited for).
#   scripts/launch.sh N PROGRAM [ARGS...]
set -uo pipefail
if [ $# -lt 2 ]; then echo "usage: $0 N PROGRAM [ARGS...]" >&2; exit 2; fi
n=$1; shift
port=${MASTER_PORT:-$(( 20000 + RANDOM % 20000 ))}
pids=()
for ((r = 0; r < n; r++)); do
  RANK=$r WORLD_SIZE=$n LOCAL_RANK=$r MASTER_ADDR=${MASTER_ADDR:-127.0.0.1} MASTER_PORT=$port \
    TORCHELASTIC_USE_AGENT_STORE= "$@" &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do
  wait "$pid"; rc=$?
  [ $status -eq 0 ] && [ $rc -ne 0 ] && status=$rc
done
exit $status
