#!/usr/bin/env bash
# Put fmt's headers in DIR/include/fmt (no install, no root needed when the
# apt lists are there). MLX's CUDA headers include <fmt/format.h>, which the
# mlx-cuda wheels do not ship; Debian's libfmt-dev (fmt 9.1) works with
# FMT_HEADER_ONLY, which csrc/backend.cmake defines.
#   usage: scripts/gpu/fetch_fmt.sh DIR
set -euo pipefail
dest=${1:?usage: fetch_fmt.sh DIR}
if [ -f "$dest/include/fmt/format.h" ]; then exit 0; fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
( cd "$tmp" && { apt-get download -q libfmt-dev >/dev/null 2>&1 ||
  { apt-get update -qq >/dev/null 2>&1 && apt-get download -q libfmt-dev >/dev/null 2>&1; }; } ) || {
  echo "fetch_fmt: could not download Debian's libfmt-dev (apt-get download libfmt-dev)" >&2
  exit 1
}
dpkg -x "$tmp"/libfmt-dev_*.deb "$tmp/x"
mkdir -p "$dest/include"
cp -r "$tmp/x/usr/include/fmt" "$dest/include/"
echo "fetch_fmt: fmt headers in $dest/include"
