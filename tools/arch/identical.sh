#!/usr/bin/env bash
# Runs `ditgen generate` for a fixed set of cases with one binary and stores, per case, every
# frame as PNG (the .mkv is written too, but its container carries random ids) and the JSON with its timing and memory
# fields removed; then, given a second output folder, says per case whether the frames and the
# JSON are bit-identical and, where the frames differ, their PSNR.
#   tools/arch/identical.sh run BINARY OUTDIR [FRAMES...]   one binary's outputs (all cases,
#                                                  or those of the frame counts given)
#   tools/arch/identical.sh diff OUTDIR_A OUTDIR_B  the comparison
# Cases: dense and two sparse specs at 1, 16 and 64 frames (64 frames at 6 steps, to keep the
# run within minutes on two cores).
set -euo pipefail
SPECS=("dense" "radial3d:decay=0.5,dense_steps=0.4,refresh=4" "radial:block=64")
CASES=("1 20" "16 20" "64 6")
PY=/usr/bin/python3

case "${1:-}" in
run)
  bin=$2 out=$3
  only=" ${*:4} "
  mkdir -p "$out"
  for c in "${CASES[@]}"; do
    read -r frames steps <<<"$c"
    [ "$only" != "  " ] && [[ "$only" != *" $frames "* ]] && continue
    for i in "${!SPECS[@]}"; do
      name="f${frames}_a${i}"
      rm -rf "$out/$name"
      mkdir -p "$out/$name"
      "$bin" generate --model models/digits-dit.h5 --labels 3,7 --seed 0 --threads 2 --frames "$frames" \
        --steps "$steps" --attn "${SPECS[$i]}" --out "$out/$name/video.mkv" --frames-dir "$out/$name/frames" \
        --json "$out/$name/raw.json" --overwrite
      $PY - "$out/$name/raw.json" "$out/$name/run.json" <<'PYEOF'
import json, sys
j = json.load(open(sys.argv[1]))
def strip(o):
    if isinstance(o, dict):
        return {k: strip(v) for k, v in o.items() if "seconds" not in k and k != "peak_rss_mb"}
    if isinstance(o, list):
        return [strip(v) for v in o]
    return o
json.dump(strip(j), open(sys.argv[2], "w"), indent=1, sort_keys=True)
PYEOF
      echo "$name ${SPECS[$i]} frames=$frames steps=$steps"
    done
  done
  ;;
diff)
  a=$2 b=$3
  for d in "$b"/f*_a*; do
    name=$(basename "$d")
    $PY - "$a/$name" "$b/$name" "$name" <<'PYEOF'
import glob, hashlib, json, os, sys
import cv2, numpy as np
a, b, name = sys.argv[1:4]
fa = sorted(glob.glob(os.path.join(a, "frames", "*.png")))
fb = sorted(glob.glob(os.path.join(b, "frames", "*.png")))
assert [os.path.basename(p) for p in fa] == [os.path.basename(p) for p in fb], "frame lists differ"
xa = np.stack([cv2.imread(p, cv2.IMREAD_UNCHANGED) for p in fa]).astype(np.float64)
xb = np.stack([cv2.imread(p, cv2.IMREAD_UNCHANGED) for p in fb]).astype(np.float64)
mse = float(np.mean((xa - xb) ** 2))
psnr = "inf" if mse == 0 else "%.1f dB" % (10 * np.log10(255.0 ** 2 / mse))
ja, jb = json.load(open(os.path.join(a, "run.json"))), json.load(open(os.path.join(b, "run.json")))
def md5(paths):
    h = hashlib.md5()
    for p in paths:
        h.update(open(p, "rb").read())
    return h.hexdigest()
print("%-8s frames %s (PSNR %s)  json %s  frames md5 %s -> %s" % (
    name, "identical" if mse == 0 else "DIFFER", psnr, "identical" if ja == jb else "DIFFER", md5(fa), md5(fb)))
if ja != jb:
    for k in sorted(set(ja) | set(jb)):
        if ja.get(k) != jb.get(k):
            print("   json key %s: %s -> %s" % (k, json.dumps(ja.get(k))[:200], json.dumps(jb.get(k))[:200]))
PYEOF
  done
  ;;
*)
  echo "usage: $0 run BINARY OUTDIR | diff OUTDIR_A OUTDIR_B" >&2
  exit 2
  ;;
esac
