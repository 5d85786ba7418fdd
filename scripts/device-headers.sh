#!/usr/bin/env bash
# The GPU machine has the sqlite3 and xxHash libraries but not their headers
# (and no package registry). Fetch the Debian -dev packages here and unpack
# their headers into .deps/device/include, which `device` calls carry along;
# meson is then set up there with -Dextra_include_dir=.deps/device/include.
set -euo pipefail
cd "$(dirname "$0")/.."
out=.deps/device
rm -rf "$out" && mkdir -p "$out/debs" "$out/root" "$out/include"
(cd "$out/debs" && apt-get download libsqlite3-dev libxxhash-dev libgloo-dev >/dev/null)
for deb in "$out"/debs/*.deb; do dpkg -x "$deb" "$out/root"; done
cp -r "$out/root/usr/include/." "$out/include/"
rm -rf "$out/debs" "$out/root"
du -sh "$out/include"
