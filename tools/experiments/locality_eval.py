"""Experiment (issue 6): how close do masked runs stay to dense, per model?

For each model file, runs the float32 PyTorch reference sampler (tools/train/sample.py) dense and
with every self-attention call under an exact pair mask of tools/train/locality.py, from the first
step and in every layer (no dense warm-up), for the cases of bench/quality_sweep.py, and reports
the PSNR of the 8-bit frames against the same model's dense run (mean over frames) and the pair
density. Used to compare the shipped model with its locality fine-tune before measuring both on
the CPU with `ditgen compare`.

    python3 tools/experiments/locality_eval.py --device cuda --models models/digits-dit.h5 \\
        runs/local/final.h5 --frames 16 64 --json locality.json
"""
import argparse
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "train"))
sys.path.insert(0, os.path.dirname(__file__))
import locality  # noqa: E402
import model as model_module  # noqa: E402
from export import load_model  # noqa: E402
from oracle_bound import CASES  # noqa: E402  (bench/quality_sweep.py's cases)
from pooled_compensation import psnr_frames  # noqa: E402
from sample import frames_u8, sample  # noqa: E402

DENSE = model_module.attention


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["models/digits-dit.h5"])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--frames", type=int, nargs="+", default=[16])
    ap.add_argument("--cases", type=int, default=len(CASES), help="first K cases (64 frames: fewer)")
    ap.add_argument("--cases-long", type=int, default=2, help="cases at more than 16 frames")
    ap.add_argument("--masks", nargs="+", default=sorted(locality.MASKS))
    ap.add_argument("--json", default="")
    a = ap.parse_args()
    if a.device.startswith("cuda"):  # float32 reference numerics, as tools/train/sample.py
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    rows = []
    for path in a.models:
        m = load_model(path, a.device)
        H, W = m.cfg.frame_height, m.cfg.frame_width
        for frames in a.frames:
            grid = (frames // m.cfg.patch_t, H // m.cfg.patch_h, W // m.cfg.patch_w)
            masks = {name: locality.MaskedAttention(DENSE, name, grid) for name in a.masks}
            for seed, labels in CASES[: a.cases if frames <= 16 else a.cases_long]:
                model_module.attention = DENSE
                dense = frames_u8(sample(m, labels, frames, H, W, seed))
                for name, att in masks.items():
                    model_module.attention = att
                    out = frames_u8(sample(m, labels, frames, H, W, seed))
                    model_module.attention = DENSE
                    row = {"model": path, "frames": frames, "seed": seed, "labels": list(labels),
                           "mask": name, "psnr_db": psnr_frames(out, dense),
                           "density": att.pairs / att.total}
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    print("\n| model | frames | mask | PSNR dB median (worst) | density |\n|---|---|---|---|---|")
    for path in a.models:
        for frames in a.frames:
            for name in a.masks:
                r = [x["psnr_db"] for x in rows if x["model"] == path and x["frames"] == frames and x["mask"] == name]
                d = [x["density"] for x in rows if x["model"] == path and x["frames"] == frames and x["mask"] == name]
                print(f"| {path} | {frames} | {name} | {np.median(r):.2f} ({min(r):.2f}) | {d[0]:.3f} |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
