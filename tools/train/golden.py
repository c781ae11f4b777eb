"""Writes the C++/PyTorch parity files tests/data/golden_forward.h5 and golden_sample.h5.

    python3 tools/train/golden.py [--model models/digits-dit.h5] [--out tests/data]

Runs on the CPU in float32 with the shipped weights (float16 in the file, read into
float32, exactly what the C++ loader sees). tests/data/README.md documents the contents.
"""
import argparse
import os
import sys
import time

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export import load_model  # noqa: E402
from sample import frames_u8, noise, sample, schedule, thwc_to_torch, torch_to_thwc  # noqa: E402

FORWARD_CASES = [
    # name, T, H, W, noise seed, t, per-block outputs stored
    ("t2_32x32", 2, 32, 32, 1001, 637.5, True),
    ("t1_64x64", 1, 64, 64, 1002, 212.25, False),
]
LABELS = [[3, 7], None]  # sample 0 conditional, sample 1 null (filled in with num_classes)

SAMPLE_RUNS = [
    # name, solver, T, seed, labels
    ("unipc_t16", "unipc", 16, 7, (3, 7)),
    ("unipc_t1", "unipc", 1, 11, (5, 2)),
    ("euler_t1", "euler", 1, 11, (5, 2)),
]

GZ = dict(compression="gzip", compression_opts=9, shuffle=True)


def write_forward(model, path):
    cfg = model.cfg
    null = [cfg.num_classes] * cfg.ctx_len
    with h5py.File(path + ".tmp", "w") as f:
        f.attrs["model"] = np.bytes_("models/digits-dit.h5")
        for name, T, H, W, seed, t, keep_blocks in FORWARD_CASES:
            g = f.create_group(name)
            x = noise(seed, (T, H, W, cfg.in_channels), batch=2)  # (2,T,H,W,C)
            labels = np.array([LABELS[0], null], dtype=np.int32)
            trace = {}
            with torch.no_grad():
                v = model(thwc_to_torch(x), torch.full((2,), t, dtype=torch.float32),
                          labels=torch.from_numpy(labels).long(), trace=trace)
            g.attrs["noise_seed"] = np.int64(seed)
            g.attrs["T"], g.attrs["H"], g.attrs["W"] = np.int64(T), np.int64(H), np.int64(W)
            g.create_dataset("x", data=x, **GZ)
            g.create_dataset("t", data=np.full((2,), t, dtype=np.float32))
            g.create_dataset("labels", data=labels)
            g.create_dataset("raw_ctx", data=trace["raw"].numpy(), **GZ)
            g.create_dataset("ctx", data=trace["ctx"].numpy(), **GZ)
            g.create_dataset("e", data=trace["e"].numpy(), **GZ)
            g.create_dataset("e0", data=trace["e0"].numpy(), **GZ)
            if keep_blocks:
                g.create_dataset("x_embed", data=trace["x_embed"].numpy(), **GZ)
                g.create_dataset("blocks", data=torch.stack(trace["blocks"]).numpy(), **GZ)
            g.create_dataset("velocity", data=torch_to_thwc(v), **GZ)
            print(f"{name}: |v| mean {v.abs().mean():.4f}")
    os.replace(path + ".tmp", path)


def write_sample(model, path, frames16):
    cfg = model.cfg
    with h5py.File(path + ".tmp", "w") as f:
        f.attrs["model"] = np.bytes_("models/digits-dit.h5")
        f.attrs["steps"] = np.int64(cfg.sample_steps)
        f.attrs["cfg"] = np.float64(cfg.sample_cfg)
        f.attrs["shift"] = np.float64(cfg.sample_shift)
        f.create_dataset("sigmas", data=np.array(schedule(cfg.sample_steps, cfg.sample_shift)))
        for name, solver, T, seed, labels in SAMPLE_RUNS:
            if T == 16:
                T = frames16
                name = f"unipc_t{T}"
            t0 = time.time()
            x = sample(model, labels, T, cfg.frame_height, cfg.frame_width, seed, solver=solver)
            g = f.create_group(name)
            g.attrs["solver"] = np.bytes_(solver)
            g.attrs["seed"] = np.int64(seed)
            g.attrs["frames"] = np.int64(T)
            g.create_dataset("labels", data=np.array(labels, dtype=np.int32))
            g.create_dataset("frames_u8", data=frames_u8(x), **GZ)
            g.create_dataset("output", data=torch_to_thwc(x)[0], **GZ)
            print(f"{name}: {time.time() - t0:.0f} s")
    os.replace(path + ".tmp", path)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="models/digits-dit.h5")
    ap.add_argument("--out", default="tests/data")
    ap.add_argument("--frames", type=int, default=16, help="frames of the long sampling run")
    ap.add_argument("--skip-sample", action="store_true")
    ap.add_argument("--threads", type=int, default=0,
                    help="CPU threads (0: all cores; 1 is much faster on a busy machine)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads or os.cpu_count() or 1)
    model = load_model(a.model)
    os.makedirs(a.out, exist_ok=True)
    write_forward(model, os.path.join(a.out, "golden_forward.h5"))
    if not a.skip_sample:
        write_sample(model, os.path.join(a.out, "golden_sample.h5"), a.frames)
    for fn in ("golden_forward.h5", "golden_sample.h5"):
        p = os.path.join(a.out, fn)
        if os.path.exists(p):
            print(f"{p}: {os.path.getsize(p) / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
