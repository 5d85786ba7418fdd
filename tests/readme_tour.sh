#!/usr/bin/env bash
# The README's CLI tour, verbatim, on the store `make demo` leaves: runs
# examples/demo.sh into a scratch store, then every README line that starts
# with `build/cli/tessera` and names `demo-store`, in order, run from a
# directory where `demo-store` is that store and `build/` this build. Each must exit 0,
# except `diff` of two different checkpoints, which exits 1 by contract.
#   tests/readme_tour.sh SOURCE_ROOT BUILD_DIR
set -euo pipefail
src=$1 build=$(cd "$2" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
mkdir -p build && ln -s "$build/examples" build/examples && ln -s "$build/cli" build/cli
cp -r "$src/examples" "$src/scripts" .
TESSERA_DEMO_STORE="$work/demo-store" bash examples/demo.sh > demo.log 2>&1 || { cat demo.log; exit 1; }
grep '^build/cli/tessera .*demo-store' "$src/README.md" > tour.sh || true
[ "$(wc -l < tour.sh)" -ge 8 ] || { echo "README tour not found"; exit 1; }
status=0
while IFS= read -r line; do
  cmd=${line%%  #*}  # the command without its comment
  rc=0
  eval "$cmd" > out.txt 2>&1 || rc=$?
  want=0
  [[ $cmd == *" diff "* ]] && want=1
  if [ "$rc" -ne "$want" ]; then
    echo "FAIL (exit $rc, want $want): $cmd"; cat out.txt; status=1
  else
    echo "ok: $cmd"
  fi
done < tour.sh
exit $status
