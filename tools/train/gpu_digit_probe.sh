#!/usr/bin/env bash
# Digit-score probe on the GPU (issue: trained model quality). Writes to $OUT, for scoring on
# the CPU with `python3 bench/digit_quality.py --h5 FILE`:
#   real_t16.h5      the training generator's own clips (held-out digits) for the 50 label
#                    pairs of bench/digit_quality.py: the scorer's ceiling on real data;
#   gen_cfgG_t16.h5  the shipped model through the float32 reference sampler (UniPC, 20 steps)
#                    at guidance G, the same 50 label pairs and seeds 1000 + k.
# Usage: [MODEL=file.h5] bash tools/train/gpu_digit_probe.sh ["2 4 6 8"]   (MODEL: the shipped one)
set -euo pipefail
cd "$(dirname "$0")/../.."
export PYTHONUNBUFFERED=1
O="${OUT:-runs/probe}"; mkdir -p "$O"
GUIDANCE="${1:-2 4 6 8}"
MODEL="${MODEL:-models/digits-dit.h5}"
PAIRS="$(python3 -c "
import random
rng = random.Random(20261123)  # bench/digit_quality.py's cases
print(' '.join(f'{rng.randrange(10)},{rng.randrange(10)}' for _ in range(50)))")"
python3 - "$O/real_t16.h5" $PAIRS <<'PY'
import sys
import h5py, numpy as np, torch
sys.path.insert(0, "tools/train")
from data import MovingDigits
out, pairs = sys.argv[1], [[int(v) for v in p.split(",")] for p in sys.argv[2:]]
md = MovingDigits("data/digits.png")
labels, idx, pos0, vel = md.params(20261123, len(pairs), 16, "val")
labels = torch.tensor(pairs, dtype=torch.int64)
# idx was drawn for other labels; any held-out index is valid for every class
x = md.render(labels, idx, md.trajectory(pos0, vel, 16), 16)  # (K,1,T,64,64) in [-1,1]
u8 = np.floor((x.clamp(-1, 1).numpy() + 1.0) * 127.5 + 0.5).astype(np.uint8)
with h5py.File(out, "w") as f:
    f.create_dataset("frames_u8", data=u8.transpose(0, 2, 3, 4, 1), compression="gzip")
    f.create_dataset("labels", data=labels.numpy())
print("real clips:", u8.shape)
PY
for g in $GUIDANCE; do
  python3 tools/train/sample.py --device cuda --model "$MODEL" --frames 16 --seed 1000 \
    --cfg "$g" --labels $PAIRS --h5 "$O/gen_cfg${g}_t16.h5" | tail -1
done
ls -la "$O"
