"""Weight files (docs/weights.md, format version 1): write and read.

    python3 tools/train/export.py --ckpt runs/main/ckpt.pt --out models/digits-dit.h5

writes the EMA weights of a training checkpoint in float16. Root attributes: `format`
(fixed-length ASCII string "ditgen"), `format_version` (int64 1) and every config key of
docs/model.md section 1 (int64 or float64). One dataset per tensor, named as in section 10,
no compression, no filters.
"""
import argparse
import os

import h5py
import numpy as np
import torch

from model import DiT, DiTConfig

FORMAT = "ditgen"
FORMAT_VERSION = 1


def save_h5(state_dict, cfg, path, dtype=np.float16):
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    tmp = path + ".tmp"
    with h5py.File(tmp, "w") as f:
        f.attrs["format"] = np.bytes_(FORMAT)
        f.attrs["format_version"] = np.int64(FORMAT_VERSION)
        for k, v in cfg.to_dict().items():
            f.attrs[k] = np.float64(v) if isinstance(v, float) else np.int64(v)
        for name, t in state_dict.items():
            a = t.detach().float().cpu().numpy()
            if not np.all(np.isfinite(a)):
                raise ValueError(f"{name}: non-finite values")
            q = a.astype(dtype)
            if not np.all(np.isfinite(q)):
                raise ValueError(f"{name}: overflows {np.dtype(dtype).name}")
            f.create_dataset(name, data=q)
    os.replace(tmp, path)


def load_h5(path):
    """-> (DiTConfig, state_dict of float32 tensors)."""
    with h5py.File(path, "r") as f:
        fmt = f.attrs["format"]
        fmt = fmt.decode() if isinstance(fmt, bytes) else str(fmt)
        if fmt != FORMAT or int(f.attrs["format_version"]) != FORMAT_VERSION:
            raise ValueError(f"{path}: format {fmt} v{f.attrs['format_version']}, want {FORMAT} v{FORMAT_VERSION}")
        cfg = DiTConfig.from_dict(dict(f.attrs))
        sd = {k: torch.from_numpy(f[k][()].astype(np.float32)) for k in f.keys()}
    return cfg, sd


def load_model(path, device="cpu"):
    cfg, sd = load_h5(path)
    m = DiT(cfg)
    m.load_state_dict(sd, strict=True)
    return m.to(device).eval()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", required=True, help="training checkpoint (train.py)")
    ap.add_argument("--out", default="models/digits-dit.h5")
    ap.add_argument("--raw", action="store_true", help="export the raw weights instead of the EMA")
    ap.add_argument("--dtype", default="float16", choices=["float16", "float32"])
    a = ap.parse_args()
    ck = torch.load(a.ckpt, map_location="cpu")
    cfg = DiTConfig.from_dict(ck["config"])
    sd = ck["model"] if a.raw else ck["ema"]
    save_h5(sd, cfg, a.out, np.float16 if a.dtype == "float16" else np.float32)
    print(f"{a.out}: {os.path.getsize(a.out) / 2**20:.2f} MiB, step {ck['step']}")


if __name__ == "__main__":
    main()
