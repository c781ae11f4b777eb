#!/usr/bin/env bash
# Extracts OpenCV's handwritten-digit sheet (digits.png: 50x100 digits of 20x20 pixels,
# 500 per class, class = row // 5) from Debian's opencv-doc package and checks it.
# Usage: tools/data/fetch_digits.sh [DEST_DIR]   (default: data/)
set -euo pipefail
dest="${1:-data}"
want=60c917758ef97cc090f35cd8e293e4de691ef942847da0ff80dedab33d57c662
out="$dest/digits.png"
mkdir -p "$dest"
if [[ -f "$out" ]] && echo "$want  $out" | sha256sum -c --quiet - 2>/dev/null; then
  echo "$out: present, checksum ok"; exit 0
fi
src=/usr/share/doc/opencv-doc/examples/data/digits.png
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
if [[ ! -f "$src" ]]; then
  (cd "$tmp" && apt-get download opencv-doc >/dev/null)
  dpkg -x "$tmp"/opencv-doc_*.deb "$tmp/root"
  src="$tmp/root/usr/share/doc/opencv-doc/examples/data/digits.png"
fi
cp "$src" "$tmp/digits.png"
got="$(sha256sum "$tmp/digits.png" | cut -d' ' -f1)"
if [[ "$got" != "$want" ]]; then
  echo "error: digits.png has sha256 $got, expected $want" >&2; exit 1
fi
mv "$tmp/digits.png" "$out"
echo "$out: extracted, checksum ok"
