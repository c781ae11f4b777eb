#!/usr/bin/env bash
# Seam error and memory of the Wan2.1 VAE's tiled decode (--vae-tile) against the whole-frame
# decode of the same latents (issue 19).
#
#   bench/vae_tile_seams.sh DITGEN VAE LATENTS [TILE:OVERLAP ...]
#
# DITGEN: build/apps/ditgen; VAE: a Wan2.1 VAE .safetensors; LATENTS: a .safetensors with tensor
# `latents` [16, T, H, W] (what `generate --latents-out` writes). Each TILE:OVERLAP (pixels;
# default 256:64 384:64 256:128) is decoded with `ditgen vae --decode --vae-tile TILE
# --vae-tile-overlap OVERLAP`, the whole-frame decode once first. Printed per run: decode
# seconds, peak RSS (MB), and for the tiled runs the PSNR of their 8-bit frames against the
# whole-frame ones over all pixels and over the pixels within 16 of a seam (PYTHON, default
# /usr/bin/python3, needs numpy and cv2). Environment: THREADS (default 2), DTYPE (auto), OUT
# (work folder, default a fresh mktemp -d).
set -euo pipefail
if [[ $# -lt 3 ]]; then sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 2; fi
DITGEN=$1 VAE=$2 LATENTS=$3
shift 3
TILES=("$@")
(( ${#TILES[@]} )) || TILES=(256:64 384:64 256:128)
PYTHON=${PYTHON:-/usr/bin/python3}
OUT=${OUT:-$(mktemp -d /tmp/vae_tile_seams.XXXXXX)}
mkdir -p "$OUT"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
run() {  # NAME [flags...]
  local name=$1; shift
  "$DITGEN" vae --model "$VAE" --decode "$LATENTS" --threads "${THREADS:-2}" --dtype "${DTYPE:-auto}" "$@" \
    --frames-dir "$OUT/$name" --json "$OUT/$name.json" --overwrite > "$OUT/$name.log" 2>&1
}
run whole
for t in "${TILES[@]}"; do run "tile_${t/:/_}" --vae-tile "${t%:*}" --vae-tile-overlap "${t#*:}"; done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
"$PYTHON" - "$OUT" "${TILES[@]}" <<'PY'
import glob, json, os, sys
import cv2, numpy as np
out, tiles = sys.argv[1], sys.argv[2:]
def frames(name):
    return np.stack([cv2.imread(f) for f in sorted(glob.glob(os.path.join(out, name, "*.png")))]).astype(np.float64)
def psnr(a, b):
    mse = np.mean((a - b) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)
def seams(length, tile, overlap):  # pixel positions of tile edges, as vae/tiling.cpp places them (latent units x8)
    L, T, O = length // 8, tile // 8, overlap // 8
    if L <= T: return []
    starts, s = [], 0
    while True:
        s2 = min(s, L - T); starts.append(s2)
        if s2 + T >= L: break
        s += T - O
    return sorted({8 * x for x in starts[1:]} | {8 * (x + T) for x in starts[:-1]})
ref = frames("whole")
j = json.load(open(os.path.join(out, "whole.json")))
print(f"{'run':>14} {'decode s':>9} {'peak MB':>8} {'PSNR dB':>8} {'near seams dB':>14}")
print(f"{'whole':>14} {j['decode_seconds']:9.1f} {j['peak_rss_mb']:8.0f} {'-':>8} {'-':>14}")
for t in tiles:
    name = "tile_" + t.replace(":", "_")
    tile, overlap = map(int, t.split(":"))
    got, j = frames(name), json.load(open(os.path.join(out, name + ".json")))
    H, W = ref.shape[1:3]
    mask = np.zeros((H, W), bool)
    for y in seams(H, tile, overlap): mask[max(0, y - 16):y + 16, :] = True
    for x in seams(W, tile, overlap): mask[:, max(0, x - 16):x + 16] = True
    near = psnr(ref[:, mask], got[:, mask]) if mask.any() else float("nan")
    print(f"{name:>14} {j['decode_seconds']:9.1f} {j['peak_rss_mb']:8.0f} {psnr(ref, got):8.2f} {near:14.2f}")
PY
