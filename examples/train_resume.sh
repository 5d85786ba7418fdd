#!/usr/bin/env bash
# Trains examples/train_lm on 4 ranks (FSDP-style row shards) for 6 steps,
# saving every 3 with async saves (steps 4-6 run while step 3's checkpoint is
# written); resumes step 3 on 2 ranks (column shards) and trains to 6
# again into the same store; then checks that the resumed run's losses are
# bit-identical to the uninterrupted run's.
#   examples/train_resume.sh BUILD_DIR STORE [--keep-store]
# STORE is emptied first, unless --keep-store (make demo adds its checkpoints
# to the store reshard_demo filled: fsdp4-step-3/6 and tp2-step-6).
set -euo pipefail
build=$1 store=$2 keep=${3:-}
[ "$keep" = "--keep-store" ] || rm -rf "$store"
here=$(cd "$(dirname "$0")/.." && pwd)
launch="$here/scripts/launch.sh"
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
MASTER_PORT= "$launch" 4 "$build/examples/train_lm" "$store" --layout rows --steps 6 --save-every 3 --async 1 --losses "$logs/full.txt"
MASTER_PORT= "$launch" 2 "$build/examples/train_lm" "$store" --layout cols --resume fsdp4-step-3 --steps 6 --losses "$logs/resumed.txt"
grep -E '^step [456] ' "$logs/full.txt" > "$logs/full-tail.txt"
if cmp -s "$logs/full-tail.txt" "$logs/resumed.txt"; then
  echo "resumed on 2 ranks (column shards): losses of steps 4-6 bit-identical to the uninterrupted 4-rank run"
else
  echo "MISMATCH between the uninterrupted and the resumed run:"; diff "$logs/full-tail.txt" "$logs/resumed.txt" || true
  exit 1
fi
