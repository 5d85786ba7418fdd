#!/usr/bin/env bash
# `make demo`: run the main example into a fresh store, then look at the
# store with the CLI.
set -euo pipefail
cd "$(dirname "$0")/.."
store=${TESSERA_DEMO_STORE:-$PWD/demo-store}
rm -rf "$store"
build/examples/reshard_demo "$store"
echo
build/cli/tessera ls "$store"
echo
build/cli/tessera show "$store" step-200 | head -n 12
echo
build/cli/tessera verify "$store"
