#!/usr/bin/env bash
# Digit-score probe on the GPU (issue: trained model quality). Writes to $OUT, for scoring on
# the CPU with `python3 bench/digit_quality.py --h5 FILE [FILE ...]`:
#   real_tF.h5       the training generator's own clips (held-out digits) for the 50 label
#                    pairs of bench/digit_quality.py: the scorer's ceiling on real data;
#   gen_cfgG_tF.h5   the shipped model through the float32 reference sampler (UniPC, 20 steps)
#                    at guidance G, the same 50 label pairs and seeds 1000 + k; with CHUNK < 50,
#                    in files gen_cfgG_tF_pI.h5 of CHUNK videos each (I = 0, 1, ...), which keeps
#                    each file small enough to copy back at long lengths.
# Usage: [MODEL=file.h5] [FRAMES=16] [CHUNK=50] [TAG=name] [SAMPLE_ARGS="..."] \
#        bash tools/train/gpu_digit_probe.sh ["2 4 6 8"]
#        (MODEL: the shipped one; F = FRAMES; TAG replaces "gen" in the names; SAMPLE_ARGS go to
#        tools/train/sample.py, e.g. "--bf16 --frames-only --mask radial3d --dense-steps 1")
set -euo pipefail
cd "$(dirname "$0")/../.."
export PYTHONUNBUFFERED=1
O="${OUT:-runs/probe}"; mkdir -p "$O"
GUIDANCE="${1:-2 4 6 8}"
FRAMES="${FRAMES:-16}"
CHUNK="${CHUNK:-50}"
MODEL="${MODEL:-models/digits-dit.h5}"
read -r -a PAIRS <<< "$(python3 -c "
import random
rng = random.Random(20261123)  # bench/digit_quality.py's cases
print(' '.join(f'{rng.randrange(10)},{rng.randrange(10)}' for _ in range(50)))")"
python3 - "$O/real_t${FRAMES}.h5" "$FRAMES" "${PAIRS[@]}" <<'PY'
import sys
import h5py, numpy as np, torch
sys.path.insert(0, "tools/train")
from data import MovingDigits
out, T, pairs = sys.argv[1], int(sys.argv[2]), [[int(v) for v in p.split(",")] for p in sys.argv[3:]]
md = MovingDigits("data/digits.png")
labels, idx, pos0, vel = md.params(20261123, len(pairs), T, "val")
labels = torch.tensor(pairs, dtype=torch.int64)
# idx was drawn for other labels; any held-out index is valid for every class
x = md.render(labels, idx, md.trajectory(pos0, vel, T), T)  # (K,1,T,64,64) in [-1,1]
u8 = np.floor((x.clamp(-1, 1).numpy() + 1.0) * 127.5 + 0.5).astype(np.uint8)
with h5py.File(out, "w") as f:
    f.create_dataset("frames_u8", data=u8.transpose(0, 2, 3, 4, 1), compression="gzip")
    f.create_dataset("labels", data=labels.numpy())
print("real clips:", u8.shape)
PY
for g in $GUIDANCE; do
  for (( i = 0; i < ${#PAIRS[@]}; i += CHUNK )); do
    name="${TAG:-gen}_cfg${g}_t${FRAMES}"
    (( CHUNK < ${#PAIRS[@]} )) && name="${name}_p$(( i / CHUNK ))"
    python3 tools/train/sample.py --device cuda --model "$MODEL" --frames "$FRAMES" --seed $(( 1000 + i )) \
      --cfg "$g" --labels "${PAIRS[@]:i:CHUNK}" --h5 "$O/$name.h5" ${SAMPLE_ARGS:-} | tail -1
  done
done
ls -la "$O"
