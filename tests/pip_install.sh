#!/usr/bin/env bash
# `pip install .` as a Python-only user gets it: into a fresh target
# directory (no build isolation: the build tools come from PYTHON's
# environment, as `make deps` installed them; no network), then
#   - the `tessera` command is installed beside the package and reports the
#     project's version;
#   - the installed package saves a checkpoint, and that command lists it,
#     shows it and verifies it.
#   tests/pip_install.sh SOURCE_ROOT PYTHON VERSION
set -euo pipefail
src=$1 python=$2 version=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bindir=$(dirname "$python")
mkdir "$work/src"  # a copy of the sources: the build must not touch the tree
tar -C "$src" --exclude=./.venv --exclude=./build --exclude='./build-*' --exclude=./.deps --exclude=./demo-store \
  --exclude=./.git --exclude='./.mesonpy-*' -cf - . | tar -C "$work/src" -xf -
PATH="$bindir:$PATH" "$python" -m pip install --quiet --no-build-isolation --no-deps \
  --target "$work/site" "$work/src" > "$work/pip.log" 2>&1 || { cat "$work/pip.log"; exit 1; }
ls -d "$work/site"/tessera_ckpt-*.dist-info > /dev/null || { echo "distribution is not tessera-ckpt: $(ls "$work/site")"; exit 1; }
cli="$work/site/bin/tessera"
[ -x "$cli" ] || { echo "no tessera command in the install: $(ls "$work/site")"; exit 1; }
[ "$("$cli" --version)" = "tessera $version" ] || { echo "version: $("$cli" --version)"; exit 1; }
cd "$work"
PYTHONPATH="$work/site" "$python" - <<'PY'
import tessera, torch, os
assert os.path.dirname(tessera.__file__).startswith(os.getcwd()), tessera.__file__
tessera.save({"w": torch.arange(12.0).reshape(3, 4), "step": 7}, "store", "step-7")
PY
"$cli" ls store | grep -q "step-7" || { "$cli" ls store; exit 1; }
"$cli" show store step-7 | grep -q "float32" || { "$cli" show store step-7; exit 1; }
"$cli" verify store > /dev/null
echo "pip install: tessera command $version, package and command agree on the store"
