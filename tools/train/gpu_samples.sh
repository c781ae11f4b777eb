#!/usr/bin/env bash
# Visual check of the trained model on the GPU (float32 reference sampler, UniPC, 20 steps,
# cfg 4): contact sheets of 16-, 32- and 64-frame videos (one video a row), copied to $OUT.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PYTHONUNBUFFERED=1
O="${OUT:-runs/samples}"; mkdir -p "$O"
S="python3 tools/train/sample.py --device cuda --model models/digits-dit.h5"
$S --labels 3,7 0,1 5,2 8,9 4,6 1,1 2,8 7,0 --frames 16 --seed 100 --png "$O/samples_t16.png"
$S --labels 3,7 0,1 5,2 8,9 4,6 1,1 2,8 7,0 --frames 1 --seed 200 --png "$O/samples_t1.png"
$S --labels 3,7 6,9 2,5 --frames 32 --seed 300 --png "$O/samples_t32.png"
$S --labels 3,7 6,9 2,5 --frames 64 --seed 400 --png "$O/samples_t64.png"
$S --labels 3,7 --frames 16 --seed 7 --h5 "$O/gpu_unipc_t16.h5"
