"""Reference sampler in PyTorch (float32), docs/model.md sections 8 and 9.

    python3 tools/train/sample.py --model models/digits-dit.h5 --labels 3,7 --frames 16 \
        --seed 0 --solver unipc --png out.png [--h5 out.h5]

Noise: the seed-only generator of section 9 (numpy uint64). Schedule:
sigma_i = shift(0.999 (1 - i/N)), sigma_N = 0; the model sees t = 1000 sigma (not
truncated). Solvers: Euler, and UniPC (bh2, order 2, x0-prediction, corrector on,
lower-order final: Wan2.1's FlowUniPCMultistepScheduler). CFG batches the conditional and
the unconditional pass (B = 2, conditional first) and combines v = v_u + g (v_c - v_u).
"""
import argparse
import math
import os

import numpy as np
import torch

M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _mix(z):
    """splitmix64 finaliser on a uint64 array (wrapping arithmetic)."""
    z = np.asarray(z, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def noise(seed, shape_thwc, batch=1):
    """Initial noise (batch, T, H, W, C) float32: element i of batch b is number b*THWC + i."""
    n = int(np.prod(shape_thwc)) * batch
    key = _mix(np.array([seed & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64))[0]
    i = np.arange(n, dtype=np.uint64)
    with np.errstate(over="ignore"):
        a = _mix(key + np.uint64(2) * i)
        b = _mix(key + np.uint64(2) * i + np.uint64(1))
    u1 = ((a >> np.uint64(11)).astype(np.float64) + 1.0) * 2.0 ** -53
    u2 = (b >> np.uint64(11)).astype(np.float64) * 2.0 ** -53
    eps = np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)
    return eps.astype(np.float32).reshape((batch,) + tuple(shape_thwc))


def thwc_to_torch(x):
    """(B,T,H,W,C) numpy -> (B,C,T,H,W) torch."""
    return torch.from_numpy(np.ascontiguousarray(x)).permute(0, 4, 1, 2, 3).contiguous()


def torch_to_thwc(x):
    """(B,C,T,H,W) torch -> (B,T,H,W,C) numpy float32."""
    return x.permute(0, 2, 3, 4, 1).contiguous().float().cpu().numpy()


def shift_sigma(s, shift):
    return shift * s / (1.0 + (shift - 1.0) * s)


def schedule(steps, shift):
    """[sigma_0 .. sigma_N] as Python floats (float64), sigma_N = 0."""
    return [shift_sigma(0.999 * (1.0 - i / steps), shift) for i in range(steps)] + [0.0]


def make_velocity(model, labels, null_label, guidance):
    """v(x, sigma) for x (B,C,T,H,W); labels (B, L) int64. CFG when guidance != 1."""
    def vel(x, sigma):
        B = x.shape[0]
        if guidance == 1.0:
            t = torch.full((B,), 1000.0 * sigma, dtype=torch.float32, device=x.device)
            return model(x, t, labels=labels)
        null = torch.full_like(labels, null_label)
        xx = torch.cat([x, x], 0)
        t = torch.full((2 * B,), 1000.0 * sigma, dtype=torch.float32, device=x.device)
        v = model(xx, t, labels=torch.cat([labels, null], 0))
        vc, vu = v[:B], v[B:]
        return vu + guidance * (vc - vu)
    return vel


def euler(vel, x, sigmas, callback=None):
    for i in range(len(sigmas) - 1):
        v = vel(x, sigmas[i])
        x = x + (sigmas[i + 1] - sigmas[i]) * v
        if callback:
            callback(i, x)
    return x


def unipc(vel, x, sigmas, callback=None):
    """UniPC bh2, order 2, x0-prediction, corrector on, lower-order final (Wan2.1)."""
    N = len(sigmas) - 1
    alpha = [1.0 - s for s in sigmas]
    lam = [math.log(a) - math.log(s) if s > 0 else math.inf for a, s in zip(alpha, sigmas)]
    m_hist = []          # x0 predictions m_0, m_1, ...
    x_prev = None        # corrected sample of the previous step
    p_prev = None        # order used by the previous predictor
    for i in range(N):
        s = sigmas[i]
        v = vel(x, s)
        m = x - s * v
        if i > 0:  # corrector
            h = lam[i] - lam[i - 1]
            phi = math.expm1(-h)  # = B (bh2)
            m1 = m_hist[i - 1]
            base = (sigmas[i] / sigmas[i - 1]) * x_prev - alpha[i] * phi * m1
            if p_prev == 1:
                x = base - alpha[i] * phi * 0.5 * (m - m1)
            else:
                r = (lam[i - 2] - lam[i - 1]) / h
                D = (m_hist[i - 2] - m1) / r
                g1 = phi / (-h) - 1.0
                b0 = g1 / phi
                b1 = 2.0 * (g1 / (-h) - 0.5) / phi
                rho0 = (b0 - b1) / (1.0 - r)
                rho1 = b0 - rho0
                x = base - alpha[i] * phi * (rho0 * D + rho1 * (m - m1))
        m_hist.append(m)
        p = min(2, N - i, i + 1)
        # predictor
        if sigmas[i + 1] == 0.0:
            x_next = m  # lambda = inf: the step reduces to the x0 prediction (p = 1 here)
        else:
            h = lam[i + 1] - lam[i]
            phi = math.expm1(-h)
            x_next = (sigmas[i + 1] / sigmas[i]) * x - alpha[i + 1] * phi * m
            if p == 2:
                r = (lam[i - 1] - lam[i]) / h
                D = (m_hist[i - 1] - m) / r
                x_next = x_next - alpha[i + 1] * phi * 0.5 * D
        x_prev, p_prev = x, p
        x = x_next
        if callback:
            callback(i, x)
    return x


SOLVERS = {"euler": euler, "unipc": unipc}


@torch.no_grad()
def sample(model, labels, frames, height, width, seed, steps=None, guidance=None, shift=None,
           solver="unipc", callback=None):
    """One video from the seed: returns (1, C, T, H, W) float32 (the final x, unclamped)."""
    cfg = model.cfg
    steps = cfg.sample_steps if steps is None else steps
    guidance = cfg.sample_cfg if guidance is None else guidance
    shift = cfg.sample_shift if shift is None else shift
    x = thwc_to_torch(noise(seed, (frames, height, width, cfg.in_channels)))
    dev = next(model.parameters()).device
    lab = torch.tensor([list(labels)], dtype=torch.int64, device=dev)
    vel = make_velocity(model, lab, cfg.num_classes, float(guidance))
    return SOLVERS[solver](vel, x.to(dev), schedule(steps, shift), callback)


def frames_u8(x):
    """(1,C,T,H,W) in [-1,1] -> uint8 (T,H,W,C): round((clamp(x)+1)*127.5)."""
    y = torch_to_thwc(x)[0]
    return np.floor((np.clip(y, -1.0, 1.0) + 1.0) * 127.5 + 0.5).astype(np.uint8)


def write_png(path, rows):
    """rows: list of uint8 (T,H,W,1) videos -> one PNG, a video per row (white separators)."""
    T = max(r.shape[0] for r in rows)
    H, W = rows[0].shape[1:3]
    sheet = np.full((len(rows) * (H + 2), T * (W + 2)), 255, np.uint8)
    for k, r in enumerate(rows):
        for t in range(r.shape[0]):
            sheet[k * (H + 2):k * (H + 2) + H, t * (W + 2):t * (W + 2) + W] = r[t, :, :, 0]
    try:
        import cv2
        cv2.imwrite(path, sheet)
    except ImportError:
        import matplotlib.pyplot as plt
        plt.imsave(path, sheet, cmap="gray", vmin=0, vmax=255)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="models/digits-dit.h5")
    ap.add_argument("--labels", nargs="+", default=["3,7"], help="one 'a,b' pair a video")
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--height", type=int, default=0)
    ap.add_argument("--width", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0, help="video k uses seed + k")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--cfg", type=float, default=None)
    ap.add_argument("--shift", type=float, default=None)
    ap.add_argument("--solver", default="unipc", choices=sorted(SOLVERS))
    ap.add_argument("--png", default="", help="contact sheet, one video a row")
    ap.add_argument("--h5", default="", help="uint8 frames (K,T,H,W,C), float output, labels (K,2), seeds (K)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--adapter", default="", help="a LoRA file (tools/train/lora.py) merged into the model")
    ap.add_argument("--riflex", type=int, default=0, help="RIFLEx: temporal rotary pair K (1-based), as ditgen's --riflex")
    ap.add_argument("--mask", default="", help="self-attention under this mask of tools/train/locality.py")
    ap.add_argument("--dense-steps", type=int, default=0, help="with --mask: the first steps run dense")
    ap.add_argument("--bf16", action="store_true",
                    help="training precision (bf16 autocast): fast scoring, not the float32 reference")
    ap.add_argument("--frames-only", action="store_true", help="--h5 without the float output")
    ap.add_argument("--threads", type=int, default=0,
                    help="CPU threads (0: all cores; 1 is much faster on a busy machine)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads or os.cpu_count() or 1)
    if a.device.startswith("cuda") and not a.bf16:  # a float32 reference: no TF32 anywhere
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    from export import load_model
    model = load_model(a.model, a.device)
    if a.adapter:
        import lora
        lora.merge_adapter_file(model, a.adapter)
    pairs = model.cfg.head_dim - 4 * (model.cfg.head_dim // 6)
    if a.riflex and not 1 <= a.riflex <= pairs // 2:
        raise SystemExit(f"--riflex {a.riflex}: expected a temporal rotary pair from 1 to {pairs // 2}")
    model.riflex_k = a.riflex
    H = a.height or model.cfg.frame_height
    W = a.width or model.cfg.frame_width
    if a.dense_steps < 0 or (a.dense_steps and not a.mask):
        raise SystemExit(f"--dense-steps {a.dense_steps}: expected a count >= 0, with --mask")
    switch = None
    if a.mask:  # every layer under the mask from step --dense-steps on (no dense layers)
        import locality
        import model as model_module
        dense = model_module.attention
        grid = (a.frames // model.cfg.patch_t, H // model.cfg.patch_h, W // model.cfg.patch_w)
        masked = locality.MaskedAttention(dense, a.mask, grid)

        def switch(i, x):  # after step i; i = -1 before the first
            model_module.attention = masked if i + 1 >= a.dense_steps else dense
    vids, outs = [], []
    for k, lab in enumerate(a.labels):
        labels = [int(v) for v in lab.split(",")]
        if switch:
            switch(-1, None)
        with torch.autocast(device_type=torch.device(a.device).type, dtype=torch.bfloat16, enabled=a.bf16):
            x = sample(model, labels, a.frames, H, W, a.seed + k, a.steps, a.cfg, a.shift, a.solver, switch)
        outs.append(torch_to_thwc(x)[0])
        vids.append(frames_u8(x))
        print(f"video {k}: labels {labels} seed {a.seed + k}")
    if a.png:
        write_png(a.png, vids)
    if a.h5:
        import h5py
        with h5py.File(a.h5, "w") as f:
            f.create_dataset("frames_u8", data=np.stack(vids), compression="gzip")
            if not a.frames_only:
                f.create_dataset("output", data=np.stack(outs), compression="gzip")
            f.create_dataset("labels", data=np.array([[int(v) for v in l.split(",")] for l in a.labels]))
            f.create_dataset("seeds", data=np.arange(len(a.labels)) + a.seed)


if __name__ == "__main__":
    main()
