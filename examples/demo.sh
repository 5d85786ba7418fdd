#!/usr/bin/env bash
# `make demo`: the single-process example (save, resharding load, incremental
# save), then distributed training that saves on 4 ranks and resumes on 2 in
# another layout, all into one store; then the CLI shows the store.
set -euo pipefail
cd "$(dirname "$0")/.."
store=${TESSERA_DEMO_STORE:-$PWD/demo-store}
rm -rf "$store"
build/examples/reshard_demo "$store"
echo
examples/train_resume.sh build "$store" --keep-store
echo
build/cli/tessera ls "$store"
echo
build/cli/tessera show "$store" tp2-step-6 | sed -n 1,12p  # sed reads it all: no SIGPIPE under pipefail
echo
build/cli/tessera verify "$store"
echo "store: $store"
