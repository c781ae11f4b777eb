"""Experiment (issue 6): does a pooled stand-in for the dropped key blocks keep `topp`'s quality?

`topp` keeps, per query block, the key blocks that carry an estimated mass p and drops the rest;
the dropped mass is spread thin, and over 20 steps it moves the output far from dense (17 dB at
p = 0.9 with a recall of 0.88). Here every dropped key block b takes part in the softmax as one
pseudo-key: logit q·k̄_b/√Dh + ln n_b, value v̄_b (its mean key and mean value; exp of the mean
logit times n_b is Jensen's lower bound on the block's true mass). That costs one extra column
per dropped block, O(N · N/B), against O(N · N) for the blocks themselves.

Runs the float32 PyTorch reference model (tools/train/model.py) with self-attention replaced by
an exact masked softmax, in frame order with 64-token blocks as `ditgen --attn topp` does
(mean-pooled q and k, n_b-weighted block mass, diagonal and sink block always kept), for the
cases of bench/quality_sweep.py, and reports the PSNR of the 8-bit frames against dense (mean
over frames) and the pair density. p = 1 keeps every block: a check that the masked path equals
dense. Needs PyTorch (a GPU makes it take about a minute).

    python3 tools/experiments/pooled_compensation.py --device cuda --json pooled.json
"""
import argparse
import json
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "train"))
import model as model_module  # noqa: E402
from export import load_model  # noqa: E402
from sample import frames_u8, sample  # noqa: E402

CASES = [(0, (3, 7)), (1, (1, 8))]  # bench/quality_sweep.py's first two cases
BLOCK = 64
DENSE = model_module.attention  # the reference model's own attention, restored after each run


def topp_keep(q, k, p, sink=True):
    """q, k (B,NH,N,Dh) -> kept key blocks (B,NH,nb,nb) bool, as attention/methods/topp.cpp selects."""
    B, NH, N, Dh = q.shape
    nb = N // BLOCK
    qb = q.reshape(B, NH, nb, BLOCK, Dh).mean(3)
    kb = k.reshape(B, NH, nb, BLOCK, Dh).mean(3)
    mass = torch.softmax(qb @ kb.transpose(-1, -2) / math.sqrt(Dh) + math.log(BLOCK), dim=-1)
    order = mass.argsort(dim=-1, descending=True)
    sorted_mass = mass.gather(-1, order)
    before = sorted_mass.cumsum(-1) - sorted_mass  # mass of the blocks ranked above
    keep_sorted = (before < p) | (p >= 1.0)  # keeps the block that crosses p
    keep = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)
    eye = torch.eye(nb, dtype=torch.bool, device=q.device)
    keep |= eye
    if sink:
        keep[..., 0] = True
    return keep


def masked_attention(q, k, v, keep, compensate):
    """Exact softmax over the kept blocks, plus one pseudo-key per dropped block if compensate."""
    B, NH, N, Dh = q.shape
    nb = N // BLOCK
    scale = 1.0 / math.sqrt(Dh)
    s = (q @ k.transpose(-1, -2)) * scale  # (B,NH,N,N)
    elem = keep.repeat_interleave(BLOCK, dim=2).repeat_interleave(BLOCK, dim=3)
    s = s.masked_fill(~elem, float("-inf"))
    if not compensate:
        return torch.softmax(s, dim=-1) @ v
    kb = k.reshape(B, NH, nb, BLOCK, Dh).mean(3)
    vb = v.reshape(B, NH, nb, BLOCK, Dh).mean(3)
    sp = (q @ kb.transpose(-1, -2)) * scale + math.log(BLOCK)  # (B,NH,N,nb)
    sp = sp.masked_fill(keep.repeat_interleave(BLOCK, dim=2), float("-inf"))
    w = torch.softmax(torch.cat([s, sp], dim=-1), dim=-1)
    return w[..., :N] @ v + w[..., N:] @ vb


class SparseSelfAttention:
    """Stands in for model.attention: self-attention calls (Nq == Nk) run under the top-p mask."""

    def __init__(self, p, compensate):
        self.p, self.compensate = p, compensate
        self.pairs = self.total = 0

    def __call__(self, q, k, v):
        if q.shape[2] != k.shape[2] or q.shape[2] % BLOCK:
            return DENSE(q, k, v)
        keep = topp_keep(q, k, self.p)
        self.pairs += int(keep.sum()) * BLOCK * BLOCK
        self.total += keep.numel() * BLOCK * BLOCK
        return masked_attention(q.float(), k.float(), v.float(), keep, self.compensate).to(v.dtype)



def psnr_frames(a, b):
    """Mean over frames of the 8-bit PSNR; frames equal to the reference count as 100 dB."""
    vals = []
    for x, y in zip(a.astype(np.float64), b.astype(np.float64)):
        mse = np.mean((x - y) ** 2)
        vals.append(100.0 if mse == 0 else 10 * math.log10(255.0 ** 2 / mse))
    return float(np.mean(vals))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="models/digits-dit.h5")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--p", type=float, nargs="+", default=[1.0, 0.9, 0.7, 0.5])
    ap.add_argument("--json", default="")
    a = ap.parse_args()
    if a.device.startswith("cuda"):  # float32 reference numerics, as tools/train/sample.py
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    m = load_model(a.model, a.device)
    H, W = m.cfg.frame_height, m.cfg.frame_width
    rows = []
    for seed, labels in CASES:
        model_module.attention = DENSE
        dense = frames_u8(sample(m, labels, a.frames, H, W, seed))
        for p in a.p:
            for comp in (False, True):
                att = SparseSelfAttention(p, comp)
                model_module.attention = att
                out = frames_u8(sample(m, labels, a.frames, H, W, seed))
                model_module.attention = DENSE
                row = {"seed": seed, "labels": list(labels), "p": p, "compensate": comp,
                       "psnr_db": psnr_frames(out, dense), "density": att.pairs / att.total}
                rows.append(row)
                print(json.dumps(row), flush=True)
    print("\n| p | compensation | PSNR dB (median of cases) | density |\n|---|---|---|---|")
    for p in a.p:
        for comp in (False, True):
            r = [x for x in rows if x["p"] == p and x["compensate"] == comp]
            print(f"| {p} | {'pooled' if comp else 'none'} | {np.median([x['psnr_db'] for x in r]):.2f} | "
                  f"{np.median([x['density'] for x in r]):.3f} |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
