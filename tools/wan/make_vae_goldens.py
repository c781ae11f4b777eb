#!/usr/bin/env python3
"""Golden tensors for a C++ port of the Wan2.1 video VAE (WanVAE_), computed
with the OFFICIAL Wan2.1 code.

The official source is not part of this repository. Give the script the path
of a copy of the official `wan/` folder (github.com/Wan-Video/Wan2.1, the
commit in PINNED_COMMIT below); it loads `wan/modules/vae.py` from there at
run time, without running `wan/__init__.py`. vae.py imports torch and einops
only; einops is always replaced by the minimal `rearrange` stand-in below
(the two patterns vae.py uses), so every run goes through the same code.
See docs/wan-vae-reference.md.

Tiny model of the released structure (the committed goldens):

    git clone https://github.com/Wan-Video/Wan2.1 wan21
    git -C wan21 checkout 9737cba9c1c3c4d04b33fcad41c111989865d315
    python3 tools/wan/make_vae_goldens.py --wan-src wan21/wan --out tests/data/wan

Released widths (dim 96, z_dim 16, 127M parameters; weights not written, they
are regenerated from --seed), one decode of a [16, 2, 60, 104] latent
(5 frames of 480 x 832):

    python3 tools/wan/make_vae_goldens.py --wan-src wan21/wan --out outvae \
        --preset full [--latent-size 60x104]

and the same weights alone, to check the digest against full_vae_config.json:

    python3 tools/wan/make_vae_goldens.py --wan-src wan21/wan --out w \
        --preset full --weights-only

Needs: torch (CUDA used when present), numpy; safetensors when installed
(else the built-in writer of tools/wan/make_dit_goldens.py).
"""

import argparse
import hashlib
import importlib.util
import inspect
import json
import math
import os
import sys
import time
import types

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_dit_goldens import (load_safetensors, rel_err,  # noqa: E402
                              save_safetensors, weights_digest)

PINNED_REPO = "Wan-Video/Wan2.1"
PINNED_COMMIT = "9737cba9c1c3c4d04b33fcad41c111989865d315"
# sha256 of the official file at PINNED_COMMIT; a mismatch is reported.
PINNED_SHA256 = {
    "modules/vae.py":
        "4912ffd7a9fbb17ceef9a17d4a9c4b8aee36ec37c32594f54e57693b29909498",
}

# The release's structure (wan/modules/vae.py, _video_vae); only dim differs
# in the tiny preset.
STRUCTURE = dict(z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2,
                 attn_scales=[], temperal_downsample=[False, True, True],
                 dropout=0.0)
PRESETS = {
    "tiny": dict(dim=4, prefix="tiny_vae"),
    "full": dict(dim=96, prefix="full_vae"),
}
# tiny decode cases: name -> (latent frames, latent height, latent width)
TINY_DECODE = [("T1", 1, 4, 6), ("T2", 2, 4, 6), ("T5", 5, 4, 6),
               ("T3_s", 3, 6, 10)]
# tiny encode cases: name suffix -> (frames, height, width)
TINY_ENCODE = [("", 9, 32, 48), ("_1", 1, 32, 48)]

# --------------------------------------------------------------------------
# Stand-ins and loading
# --------------------------------------------------------------------------


def rearrange(x, pattern, **axes):
    """Minimal einops.rearrange: exactly the two patterns vae.py uses."""
    p = pattern.replace(" ", "")
    if p == "bcthw->(bt)chw" and not axes:
        b, c, t, h, w = x.shape
        return x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
    if p == "(bt)chw->bcthw" and set(axes) == {"t"}:
        t = int(axes["t"])
        bt, c, h, w = x.shape
        assert bt % t == 0, (x.shape, t)
        return x.reshape(bt // t, t, c, h, w).permute(0, 2, 1, 3, 4)
    raise NotImplementedError("rearrange stand-in: " + pattern)


def _sdpa_fallback(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False,
                   scale=None):
    """F.scaled_dot_product_attention for PyTorch < 2.0 (CPU runs only):
    softmax(q k^T / sqrt(D)) v, no mask, as vae.py calls it."""
    assert attn_mask is None and dropout_p == 0.0 and not is_causal
    s = (q @ k.transpose(-1, -2)) * (scale if scale is not None else
                                     1.0 / math.sqrt(q.size(-1)))
    return torch.softmax(s, dim=-1) @ v


def _module(name, **attrs):
    m = types.ModuleType(name)
    m.__dict__.update(attrs)
    m.__path__ = []
    sys.modules[name] = m
    return m


def load_official(wan_src):
    """Imports wan/modules/vae.py as wan.modules.vae with stand-in parent
    packages (wan/__init__.py never runs) and the einops stand-in."""
    _module("einops", rearrange=rearrange)
    try:
        import torch.cuda.amp  # noqa: F401  (deprecated, still shipped)
    except ImportError:
        amp = types.ModuleType("torch.cuda.amp")
        amp.autocast = lambda enabled=True, dtype=None, cache_enabled=True: \
            torch.autocast("cuda", dtype=dtype, enabled=enabled)
        sys.modules["torch.cuda.amp"] = amp
        torch.cuda.amp = amp
    if not hasattr(F, "scaled_dot_product_attention"):
        F.scaled_dot_product_attention = _sdpa_fallback
    _module("wan")
    _module("wan.modules")
    path = os.path.join(wan_src, "modules", "vae.py")
    spec = importlib.util.spec_from_file_location("wan.modules.vae", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["wan.modules.vae"] = mod
    spec.loader.exec_module(mod)
    hashes = {}
    for rel in PINNED_SHA256:
        with open(os.path.join(wan_src, rel), "rb") as f:
            hashes["wan/" + rel] = hashlib.sha256(f.read()).hexdigest()
    return mod, hashes


def official_wrapper(vae_mod, model, device):
    """The official WanVAE wrapper around `model` (its constructor's
    checkpoint loader _video_vae is replaced by one returning `model`; the
    rest of the constructor, mean/std/scale included, runs as released)."""
    orig = vae_mod._video_vae
    vae_mod._video_vae = lambda pretrained_path=None, z_dim=None, \
        device="cpu", **kw: model
    try:
        return vae_mod.WanVAE(z_dim=16, vae_pth=None, dtype=torch.float,
                              device=device)
    finally:
        vae_mod._video_vae = orig


# --------------------------------------------------------------------------
# Random weights
# --------------------------------------------------------------------------


def randomise_weights(model, seed):
    """Replaces EVERY parameter with seeded random values (CPU generator
    torch.Generator().manual_seed(seed), one torch.randn draw per parameter
    in model.named_parameters() order, float32): conv weights
    N(0, 1/fan_in) with fan_in = in_channels * kernel volume, RMS_norm gammas
    1 + 0.2 N(0, 1), biases 0.1 N(0, 1). (The official init sets gammas to
    one, zeroes biases and the attention projection, which would hide
    bugs.)"""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            shape = tuple(p.shape)
            r = torch.randn(shape, generator=gen, dtype=torch.float32)
            if name.endswith("gamma"):
                val = 1.0 + 0.2 * r
            elif name.endswith(".bias"):
                val = 0.1 * r
            else:
                assert name.endswith(".weight") and len(shape) >= 4, name
                val = r / math.sqrt(math.prod(shape[1:]))
            p.copy_(val)


# --------------------------------------------------------------------------
# An independent whole-clip re-implementation, written from the facts in
# docs/wan-vae-reference.md (NOT a copy of the official code): no chunks and
# no caches; each causal conv sees the whole clip with two zero frames in
# front; upsample3d's time conv runs over frames 1.. only; downsample3d's is
# a valid stride-2 conv over all frames with frame 0 passed in front. Used to
# cross-check the chunked official outputs and the documented facts.
# --------------------------------------------------------------------------


def _rms(x, g):
    c = x.shape[1]
    n = torch.sqrt((x * x).sum(1, keepdim=True)).clamp_min(1e-12)
    return x / n * math.sqrt(c) * g.reshape(c, *([1] * (x.dim() - 2)))


def _cconv(x, W, name):
    """Causal 3-D conv over the whole clip (x: [1, C, T, H, W])."""
    w, b = W[name + ".weight"], W[name + ".bias"]
    kt, kh, kw = w.shape[2:]
    x = F.pad(x, (kw // 2, kw // 2, kh // 2, kh // 2, kt - 1, 0))
    return F.conv3d(x, w, b)


def _frames2d(x, fn):
    """Applies a 2-D op to every frame of [1, C, T, H, W]."""
    t = x.shape[2]
    y = fn(x[0].transpose(0, 1))  # [T, C, H, W]
    return y.transpose(0, 1).reshape(1, y.shape[1], t, *y.shape[2:])


def _res(x, W, pre):
    h = _cconv(x, W, pre + "shortcut") if pre + "shortcut.weight" in W else x
    y = _cconv(F.silu(_rms(x, W[pre + "residual.0.gamma"])), W,
               pre + "residual.2")
    y = _cconv(F.silu(_rms(y, W[pre + "residual.3.gamma"])), W,
               pre + "residual.6")
    return y + h


def _attn(x, W, pre):
    _, c, t, h, w = x.shape
    f = x[0].transpose(0, 1)  # [T, C, H, W]
    n = _rms(f, W[pre + "norm.gamma"])
    qkv = F.conv2d(n, W[pre + "to_qkv.weight"], W[pre + "to_qkv.bias"])
    qkv = qkv.reshape(t, 3 * c, h * w)
    q, k, v = qkv[:, :c], qkv[:, c:2 * c], qkv[:, 2 * c:]  # [T, C, L]
    s = torch.softmax(q.transpose(1, 2) @ k / math.sqrt(c), dim=-1)  # [T,L,L]
    o = (v @ s.transpose(1, 2)).reshape(t, c, h, w)
    o = F.conv2d(o, W[pre + "proj.weight"], W[pre + "proj.bias"])
    return x + o.transpose(0, 1).unsqueeze(0)


def _upsample(x, W, pre, temporal):
    if temporal and x.shape[2] > 1:
        c = x.shape[1]
        y = _cconv(x[:, :, 1:], W, pre + "time_conv")  # [1, 2C, T-1, H, W]
        n = y.shape[2]
        y = y.reshape(1, 2, c, n, *y.shape[3:]).permute(0, 2, 3, 1, 4, 5)
        x = torch.cat([x[:, :, :1], y.reshape(1, c, 2 * n, *y.shape[4:])], 2)
    return _frames2d(x, lambda f: F.conv2d(
        f.repeat_interleave(2, 2).repeat_interleave(2, 3),
        W[pre + "resample.1.weight"], W[pre + "resample.1.bias"], padding=1))


def _downsample(x, W, pre, temporal):
    x = _frames2d(x, lambda f: F.conv2d(
        F.pad(f, (0, 1, 0, 1)), W[pre + "resample.1.weight"],
        W[pre + "resample.1.bias"], stride=2))
    if temporal and x.shape[2] >= 3:
        y = F.conv3d(x, W[pre + "time_conv.weight"],
                     W[pre + "time_conv.bias"], stride=(2, 1, 1))
        x = torch.cat([x[:, :, :1], y], 2)
    return x


def independent_decode(W, cfg, z, mean, std):
    """z: [16, T, h, w] normalised latent -> [3, 1+4(T-1), 8h, 8w]."""
    nm, nr = len(cfg["dim_mult"]), cfg["num_res_blocks"]
    x = z.unsqueeze(0) / (1.0 / std).view(1, -1, 1, 1, 1) + \
        mean.view(1, -1, 1, 1, 1)
    x = _cconv(x, W, "conv2")
    x = _cconv(x, W, "decoder.conv1")
    x = _res(x, W, "decoder.middle.0.")
    x = _attn(x, W, "decoder.middle.1.")
    x = _res(x, W, "decoder.middle.2.")
    up = cfg["temperal_downsample"][::-1]
    j = 0
    for i in range(nm):
        for _ in range(nr + 1):
            x = _res(x, W, f"decoder.upsamples.{j}.")
            j += 1
        if i != nm - 1:
            x = _upsample(x, W, f"decoder.upsamples.{j}.", up[i])
            j += 1
    x = _cconv(F.silu(_rms(x, W["decoder.head.0.gamma"])), W,
               "decoder.head.2")
    return x[0]


def independent_encode(W, cfg, video, mean, std):
    """video: [3, 1+4k, H, W] -> normalised mu [16, 1+k, H/8, W/8]."""
    nm, nr = len(cfg["dim_mult"]), cfg["num_res_blocks"]
    x = _cconv(video.unsqueeze(0), W, "encoder.conv1")
    j = 0
    for i in range(nm):
        for _ in range(nr):
            x = _res(x, W, f"encoder.downsamples.{j}.")
            j += 1
        if i != nm - 1:
            x = _downsample(x, W, f"encoder.downsamples.{j}.",
                            cfg["temperal_downsample"][i])
            j += 1
    x = _res(x, W, "encoder.middle.0.")
    x = _attn(x, W, "encoder.middle.1.")
    x = _res(x, W, "encoder.middle.2.")
    x = _cconv(F.silu(_rms(x, W["encoder.head.0.gamma"])), W,
               "encoder.head.2")
    mu = _cconv(x, W, "conv1")[:, :cfg["z_dim"]]
    return ((mu - mean.view(1, -1, 1, 1, 1)) *
            (1.0 / std).view(1, -1, 1, 1, 1))[0]


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--wan-src", required=True,
                    help="copy of the official wan/ folder")
    ap.add_argument("--out", default="tests/data/wan", help="output folder")
    ap.add_argument("--preset", default="tiny", choices=sorted(PRESETS))
    ap.add_argument("--dim", type=int, default=None,
                    help="override the preset's base width")
    ap.add_argument("--seed", type=int, default=20250319,
                    help="seed of the weights; inputs use seed+1")
    ap.add_argument("--latent-size", default="60x104",
                    help="full preset: latent HxW of the decode case")
    ap.add_argument("--latent-frames", type=int, default=2,
                    help="full preset: latent frames of the decode case")
    ap.add_argument("--save-weights", default="auto",
                    choices=["auto", "yes", "no"],
                    help="auto: only when the model has < 50M parameters")
    ap.add_argument("--weights-only", action="store_true",
                    help="build and randomise, write PREFIX.safetensors and "
                         "PREFIX_weights.json (digest), and stop")
    ap.add_argument("--independent", default="auto",
                    choices=["auto", "float64", "float32", "off"],
                    help="precision of the independent whole-clip check "
                         "(auto: float64 for tiny, float32 for full)")
    ap.add_argument("--max-file-bytes", type=int, default=16_000_000,
                    help="full preset: split the decoded video into "
                         "per-frame tensors over several files when one "
                         "file would be larger")
    ap.add_argument("--compare-to", default=None,
                    help="folder of earlier outputs (same preset/seed): "
                         "report the max relative difference per tensor")
    ap.add_argument("--device", default=None, help="default: cuda if present")
    ap.add_argument("--wan-commit", default=PINNED_COMMIT,
                    help="official commit the --wan-src copy comes from")
    return ap.parse_args()


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def write_split(tensors, video, out, prefix, meta, limit):
    """Writes `tensors` plus `video` [3, F, H, W]: as one file PREFIX.safetensors
    with key 'video' when it fits in `limit` bytes, else per-frame tensors
    'video_frame.{i}' [3, H, W] packed in order into PREFIX.safetensors,
    PREFIX-1.safetensors, ... Returns {file: [keys]}."""
    nbytes = sum(t.numel() * 4 for t in tensors.values())
    if nbytes + video.numel() * 4 + 65536 <= limit:
        d = dict(tensors, video=video)
        save_safetensors(d, os.path.join(out, prefix + ".safetensors"), meta)
        return {prefix + ".safetensors": sorted(d)}
    files, cur, size, k = {}, dict(tensors), nbytes, 0
    frame_bytes = video[:, 0].numel() * 4
    for i in range(video.shape[1]):
        if cur and size + frame_bytes + 65536 > limit:
            name = prefix + (f"-{k}" if k else "") + ".safetensors"
            save_safetensors(cur, os.path.join(out, name), meta)
            files[name] = sorted(cur)
            cur, size, k = {}, 0, k + 1
        cur[f"video_frame.{i}"] = video[:, i].contiguous()
        size += frame_bytes
    name = prefix + (f"-{k}" if k else "") + ".safetensors"
    save_safetensors(cur, os.path.join(out, name), meta)
    files[name] = sorted(cur)
    return files


def main():
    args = parse_args()
    cfgp = dict(PRESETS[args.preset])
    if args.dim is not None:
        cfgp["dim"] = args.dim
    prefix = cfgp.pop("prefix")
    os.makedirs(args.out, exist_ok=True)

    # float32 everywhere, no TF32, deterministic cuDNN
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    device = torch.device(args.device or
                          ("cuda" if torch.cuda.is_available() else "cpu"))

    vae_mod, hashes = load_official(args.wan_src)
    for rel, want in PINNED_SHA256.items():
        if hashes["wan/" + rel] != want:
            print(f"WARNING: wan/{rel} differs from commit {PINNED_COMMIT}")

    vae_kwargs = dict(dim=cfgp["dim"], **STRUCTURE)
    t0 = time.time()
    model = vae_mod.WanVAE_(**vae_kwargs)
    model.eval().requires_grad_(False)
    randomise_weights(model, args.seed)
    n_params = sum(p.numel() for p in model.parameters())
    digest = weights_digest(model)
    t_build = time.time() - t0
    print(f"WanVAE_ {n_params} params, built+randomised+digest in "
          f"{t_build:.1f}s; device {device}", flush=True)
    meta = {"official_repo": PINNED_REPO, "official_commit": args.wan_commit,
            "seed": str(args.seed), "preset": args.preset}
    env = {"torch": torch.__version__, "device": str(device),
           "device_name": torch.cuda.get_device_name(device)
           if device.type == "cuda" else "cpu",
           "allow_tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
           "allow_tf32_cudnn": torch.backends.cudnn.allow_tf32,
           "cudnn_deterministic": torch.backends.cudnn.deterministic}
    weights_info = {"seed": args.seed, "dtype": "float32",
                    "init": inspect.getdoc(randomise_weights)}

    if args.weights_only:
        path = os.path.join(args.out, prefix + ".safetensors")
        save_safetensors({k: v.detach().cpu() for k, v in
                          model.state_dict().items()}, path, meta)
        info = {"official": {"repo": PINNED_REPO, "commit": args.wan_commit},
                "wan_vae": vae_kwargs, "num_params": n_params,
                "weights": dict(weights_info, file=prefix + ".safetensors"),
                "environment": {"torch": torch.__version__},
                "weights_digest": digest}
        with open(os.path.join(args.out, prefix + "_weights.json"), "w") as f:
            json.dump(info, f, indent=1)
            f.write("\n")
        print(f"weights written to {path}; sha256 "
              f"{digest['sha256_float32_named_order']}")
        return 0

    model.to(device)
    wrapper = official_wrapper(vae_mod, model, device)
    assert wrapper.model is model
    mean, std = wrapper.mean.float(), wrapper.std.float()
    scale = wrapper.scale  # [mean, 1/std], as the release computes it
    latents_mean = [round(float(v), 6) for v in mean.cpu()]
    latents_std = [round(float(v), 6) for v in std.cpu()]
    assert torch.equal(torch.tensor(latents_mean), mean.cpu())
    assert torch.equal(torch.tensor(latents_std), std.cpu())

    save_weights = args.save_weights == "yes" or (
        args.save_weights == "auto" and n_params < 50_000_000)
    files = {}
    if save_weights:
        weights = {k: v.detach().float().cpu()
                   for k, v in model.state_dict().items()}
        assert list(weights) == [k for k, _ in model.named_parameters()]
        save_safetensors(weights, os.path.join(args.out,
                                               prefix + ".safetensors"), meta)
        files[prefix + ".safetensors"] = sorted(weights)

    def decode(z):  # [16, T, h, w] -> [3, F, H, W]
        return model.decode(z.unsqueeze(0).to(device), scale).squeeze(0)

    def encode(v):
        return model.encode(v.unsqueeze(0).to(device), scale).squeeze(0)

    checks, info, timings, cases = {}, {}, {"build_randomise_digest_s":
                                            round(t_build, 3)}, []
    g_in = torch.Generator().manual_seed(args.seed + 1)
    ind_dtype = {"auto": torch.float64 if args.preset == "tiny"
                 else torch.float32, "float64": torch.float64,
                 "float32": torch.float32, "off": None}[args.independent]
    W = {k: v.detach().cpu().to(ind_dtype)
         for k, v in model.state_dict().items()} \
        if ind_dtype is not None else None
    ind_mean = mean.to(ind_dtype) if ind_dtype is not None else None
    ind_std = std.to(ind_dtype) if ind_dtype is not None else None

    with torch.no_grad():
        if args.preset == "tiny":
            dec, enc = {}, {}
            for name, T, h, w in TINY_DECODE:
                dec["z_" + name] = torch.randn(16, T, h, w, generator=g_in)
            for sfx, T, H, Wd in TINY_ENCODE:
                enc["video" + sfx] = torch.rand(3, T, H, Wd,
                                                generator=g_in) * 2 - 1
            for name, T, h, w in TINY_DECODE:
                z = dec["z_" + name]
                v = decode(z).float().cpu()
                dec["video_" + name] = v
                nf = 1 + 4 * (T - 1)
                checks[f"decode_{name}.shape"] = list(v.shape) == \
                    [3, nf, 8 * h, 8 * w]
                cases.append({"kind": "decode", "z": "z_" + name,
                              "video": "video_" + name,
                              "z_shape": list(z.shape),
                              "video_shape": list(v.shape)})
            for sfx, T, H, Wd in TINY_ENCODE:
                x = enc["video" + sfx]
                mu = encode(x).float().cpu()
                enc["mu" + sfx] = mu
                checks[f"encode{sfx or '_9'}.shape"] = list(mu.shape) == \
                    [16, 1 + (T - 1) // 4, H // 8, Wd // 8]
                cases.append({"kind": "encode", "video": "video" + sfx,
                              "mu": "mu" + sfx,
                              "video_shape": list(x.shape),
                              "mu_shape": list(mu.shape)})
            # causality: the first 2 latent frames alone give the first 5
            v2 = decode(dec["z_T5"][:, :2]).float().cpu()
            checks["causal_T5_first2_vs_first5frames"] = rel_err(
                dec["video_T5"][:, :5], v2)
            # encoder causality: the first frame alone gives latent frame 0
            checks["causal_encode_first_frame"] = rel_err(
                enc["mu"][:, :1], encode(enc["video"][:, :1]).float().cpu())
            # repeat: same inputs twice give the same bits
            checks["repeat_decode_T5_bitwise"] = bool(torch.equal(
                dec["video_T5"], decode(dec["z_T5"]).float().cpu()))
            # the official wrapper adds only the clamp (decode) / nothing
            wd = wrapper.decode([dec["z_T5"].to(device)])[0].float().cpu()
            checks["wrapper_decode_eq_clamp"] = rel_err(
                dec["video_T5"].clamp(-1, 1), wd)
            we = wrapper.encode([enc["video"].to(device)])[0].float().cpu()
            checks["wrapper_encode_eq_mu"] = rel_err(enc["mu"], we)
            info["decode_T5_frac_outside_unit"] = float(
                (dec["video_T5"].abs() > 1).double().mean())
            # no-cache decoder (not a golden): the time upsampling is
            # skipped, so T latent frames give T frames
            zz = dec["z_T2"].unsqueeze(0).to(device)
            x_nc = model.decoder(model.conv2(
                zz / scale[1].view(1, 16, 1, 1, 1) +
                scale[0].view(1, 16, 1, 1, 1)))
            info["nocache_decoder_T2_frames"] = int(x_nc.shape[2])
            # independent whole-clip re-implementation
            if W is not None:
                for name, T, h, w in TINY_DECODE:
                    ref = independent_decode(W, vae_kwargs,
                                             dec["z_" + name].to(ind_dtype),
                                             ind_mean.cpu(), ind_std.cpu())
                    checks[f"independent_decode_{name}"] = rel_err(
                        dec["video_" + name], ref)
                for sfx, T, H, Wd in TINY_ENCODE:
                    ref = independent_encode(W, vae_kwargs,
                                             enc["video" + sfx].to(ind_dtype),
                                             ind_mean.cpu(), ind_std.cpu())
                    checks[f"independent_encode{sfx or '_9'}"] = rel_err(
                        enc["mu" + sfx], ref)
            save_safetensors(dec, os.path.join(args.out,
                                               prefix + "_decode.safetensors"),
                             meta)
            files[prefix + "_decode.safetensors"] = sorted(dec)
            save_safetensors(enc, os.path.join(args.out,
                                               prefix + "_encode.safetensors"),
                             meta)
            files[prefix + "_encode.safetensors"] = sorted(enc)
            if save_weights:  # reload the written weights, decode again
                m2 = vae_mod.WanVAE_(**vae_kwargs).eval().requires_grad_(False)
                m2.load_state_dict(load_safetensors(os.path.join(
                    args.out, prefix + ".safetensors")))
                m2.to(device)
                checks["reload_weights_decode_T3_s"] = rel_err(
                    dec["video_T3_s"],
                    m2.decode(dec["z_T3_s"].unsqueeze(0).to(device),
                              scale).squeeze(0).float().cpu())
        else:
            lh, lw = (int(s) for s in args.latent_size.lower().split("x"))
            T = args.latent_frames
            z = torch.randn(16, T, lh, lw, generator=g_in)
            sync(device)
            t1 = time.time()
            v = decode(z).float()
            sync(device)
            timings["decode_first_s"] = round(time.time() - t1, 3)
            t1 = time.time()
            v_again = decode(z).float()
            sync(device)
            timings["decode_second_s"] = round(time.time() - t1, 3)
            checks["repeat_decode_bitwise"] = bool(torch.equal(v, v_again))
            del v_again
            v = v.cpu()
            nf = 1 + 4 * (T - 1)
            checks["decode.shape"] = list(v.shape) == [3, nf, 8 * lh, 8 * lw]
            if T >= 2:
                v1 = decode(z[:, :1]).float().cpu()
                checks["causal_first1_vs_first_frame"] = rel_err(v[:, :1], v1)
            if W is not None:
                Wd_ = {k: t.to(device) for k, t in W.items()}
                sync(device)
                t1 = time.time()
                ref = independent_decode(Wd_, vae_kwargs,
                                         z.to(device, ind_dtype),
                                         ind_mean.to(device),
                                         ind_std.to(device))
                sync(device)
                timings["independent_decode_s"] = round(time.time() - t1, 3)
                checks["independent_decode"] = rel_err(v, ref)
                del ref, Wd_
            vb = v.contiguous().numpy().tobytes()
            info["video_sha256_float32"] = hashlib.sha256(vb).hexdigest()
            info["video_per_frame_mean_std_absmax"] = [
                [float(v[:, i].double().mean()), float(v[:, i].double().std()),
                 float(v[:, i].abs().max())] for i in range(v.shape[1])]
            files.update(write_split({"z": z}, v, args.out,
                                     prefix + "_decode", meta,
                                     args.max_file_bytes))
            cases.append({"kind": "decode", "z": "z", "z_shape": list(z.shape),
                          "video_shape": list(v.shape),
                          "video_keys": "video, or video_frame.{i} [3, H, W] "
                                        "split over the files listed"})

    sanity = {}
    for fname in files:
        data = load_safetensors(os.path.join(args.out, fname))
        for k, t in data.items():
            assert torch.isfinite(t.double()).all(), (fname, k)
            assert t.numel() <= 1 or float(t.double().std()) > 0, (fname, k)
        sanity[fname] = {k: [list(t.shape), float(t.double().abs().max())]
                         for k, t in sorted(data.items())}
    compare = {}
    if args.compare_to:
        for fname in files:
            other = os.path.join(args.compare_to, fname)
            if not os.path.exists(other):
                continue
            a, b = load_safetensors(os.path.join(args.out, fname)), \
                load_safetensors(other)
            for k in sorted(a):
                compare[f"{fname}:{k}"] = rel_err(a[k], b[k]) if k in b \
                    else None
    for k, v in checks.items():
        print(f"check {k}: {v}")
    for k, v in info.items():
        print(f"info {k}: {v}")
    for k, v in timings.items():
        print(f"time {k}: {v}")
    for fname, inv in sanity.items():
        print(f"== {fname} ({os.path.getsize(os.path.join(args.out, fname))}"
              " bytes)")
        for k, (shp, amax) in inv.items():
            print(f"  {k:36s} {shp}  max|.|={amax:.4g}")
    if compare:
        vals = [v for v in compare.values() if v is not None]
        for fname in files:
            per = {k.split(":", 1)[1]: v for k, v in compare.items()
                   if k.startswith(fname + ":") and v is not None}
            if per:
                worst = max(per, key=per.get)
                print(f"compare {fname}: {len(per)} tensors, max rel diff "
                      f"{per[worst]:.3g} ({worst})")
        missing = [k for k, v in compare.items() if v is None]
        if missing:
            print("compare: missing in --compare-to:", ", ".join(missing))
        print(f"compare max rel diff vs {args.compare_to}: "
              f"{max(vals) if vals else None}")

    config = {
        "official": {"repo": PINNED_REPO, "commit": args.wan_commit,
                     "files_sha256": hashes},
        "wan_vae": vae_kwargs,
        "preset": args.preset,
        "num_params": n_params,
        "weights": dict(weights_info, saved=save_weights),
        "latents_mean": latents_mean,
        "latents_std": latents_std,
        "scale": "[latents_mean, 1/latents_std] (float32), as WanVAE.scale",
        "inputs": "torch.Generator().manual_seed(seed + 1) draws, in order: "
                  + (", ".join("z_" + n + " (randn)" for n, *_ in TINY_DECODE)
                     + ", " + ", ".join("video" + s + " (2*rand-1)"
                                        for s, *_ in TINY_ENCODE)
                     if args.preset == "tiny" else "z (randn)"),
        "cases": cases,
        "files": files,
        "precision": {"compute": "float32", "tf32": False,
                      "independent_check": str(ind_dtype)},
        "environment": env,
        "checks": checks,
        "info": info,
        "timings": timings,
        "weights_digest": digest,
    }
    if compare:
        config["compare_to"] = compare
    with open(os.path.join(args.out, prefix + "_config.json"), "w") as f:
        json.dump(config, f, indent=1)
        f.write("\n")
    tol = 1e-4 if ind_dtype != torch.float32 else 1e-3
    bad = [k for k, v in checks.items()
           if (isinstance(v, bool) and not v) or
           (isinstance(v, float) and v > (1e-5 if k.startswith("causal") or
                                          k.startswith("wrapper") or
                                          k.startswith("reload") else tol))]
    print("checks:", "FAILED " + ", ".join(bad) if bad else "all passed",
          f"({time.time() - t0:.1f}s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
