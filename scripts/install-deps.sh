#!/usr/bin/env bash
# Installs what tessera needs on Debian 12, skipping what is already there:
# Debian packages (compiler, SQLite, xxHash, lz4, doctest, Gloo headers, Python headers) and a
# project virtualenv .venv with PyTorch 2.11 (LibTorch) and Meson.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_packages=(g++ make pkg-config ninja-build python3 python3-venv python3-dev sqlite3
              libsqlite3-dev libxxhash-dev liblz4-dev doctest-dev libgloo-dev)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo=sudo
  echo "install-deps: apt-get install ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python3 ]; then
  echo "install-deps: creating .venv with $($python --version)"
  "$python" -m venv .venv
fi
if ! .venv/bin/python3 - <<'PY' 2>/dev/null
import importlib.metadata as m
assert m.version("torch").split("+")[0] == "2.11.0"
m.version("meson"); m.version("ninja"); m.version("numpy")
m.version("pybind11"); m.version("meson-python"); m.version("transformers"); m.version("pytest")
PY
then
  # TORCH_INDEX_URL picks another build of the same torch version first, e.g.
  # PyTorch's CPU-only wheels (~200 MB instead of ~5 GB of CUDA libraries):
  #   TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu make demo
  if [ -n "${TORCH_INDEX_URL:-}" ]; then
    echo "install-deps: pip install torch from $TORCH_INDEX_URL"
    .venv/bin/pip install -q --disable-pip-version-check --index-url "$TORCH_INDEX_URL" \
      "$(grep -E '^torch==' requirements.txt)"
  fi
  echo "install-deps: pip install -r requirements.txt (PyTorch wheel: a few GB, a few minutes)"
  .venv/bin/pip install -q --disable-pip-version-check -r requirements.txt
fi
echo "install-deps: ok"
