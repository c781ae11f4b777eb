"""Experiment (issue 6): how close to dense can *any* block-sparse mask stay at a given density?

Every method of `attention/` picks its blocks from a rule (radial, window) or an estimate (topp's
pooled q and k, svg's sampled rows, paro's calibration). The oracle here picks them from the exact
attention map of the very call it serves: per head and query block, the key blocks with the most
softmax mass (mean over the block's rows), the same number for every query block. Over frame-order
blocks of 64 tokens, no rule or estimate that keeps that many key blocks per query block keeps more
of the mass in any call. Kept mass is not PSNR (a static mask can do better with residual reuse,
see bench/RESULTS.md), so its PSNR against dense is a practical ceiling, not a proof.

The float32 PyTorch reference model (tools/train/model.py) runs with self-attention replaced by an
exact masked softmax in frame order with 64-token blocks (the first `dense_steps` of the sampler
steps and the first `dense_layers` blocks dense, as the C++ schedule does; `refresh` as its residual
reuse: the last dense step and every K-th step after it run dense and sparse and keep
R = dense - sparse per layer, and the steps between add R). Reports the PSNR of the 8-bit frames
against dense (mean over frames), the pair density over the whole run (dense calls count 1, an
anchor 1 + its sparse density), and the end-to-end speedup that density allows when the sparse
kernel costs density x dense (bench/RESULTS.md measures 0.97-1.09 x) and attention takes the share
of a dense run measured on the 2-core machine (`--attention-share`: 0.63 at 16 frames, 0.86 at 64).

    python3 tools/experiments/oracle_bound.py --device cuda --frames 16 --json oracle16.json
    python3 tools/experiments/oracle_bound.py --device cuda --frames 64 --cases 1 --attention-share 0.86 \\
        --density 0.3 0.2 0.12 --json oracle64.json
"""
import argparse
import json
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
import pooled_compensation as pc  # noqa: E402  (cases, block size, model hooks, PSNR)

model_module = pc.model_module
CASES = [(0, (3, 7)), (1, (1, 8)), (2, (0, 5)), (3, (4, 9)), (4, (2, 6))]  # bench/quality_sweep.py's


def oracle_attention(q, k, v, density):
    """Per head: exact block mass, top key blocks per query block, masked softmax.
    q, k, v (B,NH,N,Dh) -> (out (B,NH,N,Dh), kept pairs, all pairs)."""
    B, NH, N, Dh = q.shape
    bs = pc.BLOCK
    nb = N // bs
    keep_n = max(1, min(nb, int(round(density * nb))))
    scale = 1.0 / math.sqrt(Dh)
    out = torch.empty_like(q)
    for b in range(B):
        for h in range(NH):
            s = (q[b, h] @ k[b, h].T) * scale  # (N, N)
            p = torch.softmax(s, dim=-1)
            mass = p.reshape(nb, bs, nb, bs).sum(dim=(1, 3))  # (nb, nb)
            del p
            top = mass.topk(keep_n, dim=-1).indices
            keep = torch.zeros(nb, nb, dtype=torch.bool, device=q.device).scatter_(-1, top, True)
            elem = keep.repeat_interleave(bs, 0).repeat_interleave(bs, 1)
            out[b, h] = torch.softmax(s.masked_fill_(~elem, float("-inf")), dim=-1) @ v[b, h]
    return out, B * NH * nb * keep_n * bs * bs, B * NH * N * N


class OracleSelfAttention:
    """Stands in for model.attention: self-attention (Nq == Nk) under the oracle mask and schedule."""

    def __init__(self, density, steps, num_layers, dense_steps, dense_layers, refresh):
        """dense_steps as the C++ key: a count, or with a '.' a fraction of the steps."""
        self.density, self.layers = density, num_layers
        self.dense_steps = int(math.floor(float(dense_steps) * steps + 1e-9)) if "." in dense_steps else int(dense_steps)
        self.dense_layers, self.refresh = dense_layers, refresh
        self.calls = 0
        self.pairs = self.total = 0.0
        self.residual = {}

    def anchor(self, step):
        first = max(self.dense_steps - 1, 0)
        return self.refresh > 0 and step >= first and (step - first) % self.refresh == 0

    def __call__(self, q, k, v):
        if q.shape[2] != k.shape[2] or q.shape[2] % pc.BLOCK:
            return pc.DENSE(q, k, v)
        step, layer = divmod(self.calls, self.layers)
        self.calls += 1
        n2 = q.numel() // q.shape[-1] * q.shape[2]  # B*NH*N*N
        self.total += n2
        dense_call = step < self.dense_steps or layer < self.dense_layers
        if dense_call and not (self.anchor(step) and layer >= self.dense_layers):
            self.pairs += n2
            return pc.DENSE(q, k, v)
        sparse, kept, _ = oracle_attention(q.float(), k.float(), v.float(), self.density)
        self.pairs += kept
        if self.anchor(step):
            dense = pc.DENSE(q, k, v).float()
            self.pairs += n2
            self.residual[layer] = dense - sparse
            return dense.to(v.dtype)
        if layer in self.residual:
            sparse = sparse + self.residual[layer]
        return sparse.to(v.dtype)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="models/digits-dit.h5")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--cases", type=int, default=5)
    ap.add_argument("--density", type=float, nargs="+", default=[0.5, 0.4, 0.3, 0.2])
    ap.add_argument("--schedule", nargs="+", default=["0:0:0", "0.25:1:0", "0.4:1:4"],
                    help="dense_steps:dense_layers:refresh, one per schedule")
    ap.add_argument("--attention-share", type=float, default=0.63,
                    help="attention's share of a dense run on the target machine")
    ap.add_argument("--json", default="")
    a = ap.parse_args()
    if a.device.startswith("cuda"):  # float32 reference numerics, as tools/train/sample.py
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    m = pc.load_model(a.model, a.device)
    H, W = m.cfg.frame_height, m.cfg.frame_width
    steps, layers = m.cfg.sample_steps, m.cfg.num_layers
    rows = []
    for seed, labels in CASES[:a.cases]:
        model_module.attention = pc.DENSE
        dense = pc.frames_u8(pc.sample(m, labels, a.frames, H, W, seed))
        for sched in a.schedule:
            ds, dl, rf = sched.split(":")
            for d in a.density:
                att = OracleSelfAttention(d, steps, layers, ds, int(dl), int(rf))
                model_module.attention = att
                out = pc.frames_u8(pc.sample(m, labels, a.frames, H, W, seed))
                model_module.attention = pc.DENSE
                if att.calls != steps * layers:
                    sys.exit(f"expected {steps * layers} self-attention calls, counted {att.calls}")
                dens = att.pairs / att.total
                row = {"seed": seed, "labels": list(labels), "frames": a.frames, "density_target": d,
                       "schedule": sched, "psnr_db": pc.psnr_frames(out, dense), "density": dens,
                       "speedup_bound": 1.0 / ((1 - a.attention_share) + a.attention_share * dens)}
                rows.append(row)
                print(json.dumps(row), flush=True)
    print(f"\n{a.frames} frames, {a.cases} cases (median)\n")
    print("| dense_steps:dense_layers:refresh | oracle density per call | PSNR dB | worst | run density | e2e bound |")
    print("|---|---|---|---|---|---|")
    for sched in a.schedule:
        for d in a.density:
            r = [x for x in rows if x["schedule"] == sched and x["density_target"] == d]
            print(f"| {sched} | {d} | {np.median([x['psnr_db'] for x in r]):.2f} | {min(x['psnr_db'] for x in r):.2f} | "
                  f"{np.median([x['density'] for x in r]):.3f} | {np.median([x['speedup_bound'] for x in r]):.2f} |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
