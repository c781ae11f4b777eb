#!/usr/bin/env python3
"""Golden tensors for a C++ port of the Wan2.1 text-to-video DiT and its
flow-matching UniPC sampler, computed with the OFFICIAL Wan2.1 code.

The official source is not part of this repository. Give the script the path
of a copy of the official `wan/` folder (github.com/Wan-Video/Wan2.1, the
commit in PINNED_COMMIT below); it loads `wan/modules/model.py` and
`wan/utils/fm_solvers_unipc.py` from there at run time, without running
`wan/__init__.py` (which imports the T5, VAE, CLIP and distributed code and
their dependencies). Packages the official files import but that a bare
PyTorch install lacks (diffusers, flash-attn) are replaced by the small
stand-ins defined below; see docs/wan-reference.md for why each is faithful.

Example (tiny model, the committed goldens in tests/data/wan/):

    git clone https://github.com/Wan-Video/Wan2.1 wan21
    git -C wan21 checkout 9737cba9c1c3c4d04b33fcad41c111989865d315
    python3 tools/wan/make_dit_goldens.py --wan-src wan21/wan --out tests/data/wan

Full T2V-1.3B shape with random weights at a small token count (weights not
written; they are regenerated from --seed by this script):

    python3 tools/wan/make_dit_goldens.py --wan-src wan21/wan --out out13b \
        --preset t2v-1.3B --weights-dtype bfloat16

and the same weights alone (add --weights-only: no forward; the digest in
wan13b_dit_weights.json must equal the full run's wan13b_dit_config.json):

    python3 tools/wan/make_dit_goldens.py --wan-src wan21/wan --out w13 \
        --preset t2v-1.3B --weights-dtype bfloat16 --weights-only

Needs: torch (CUDA used when present), numpy, safetensors (a minimal built-in
writer/reader is used when safetensors is missing).
"""

import argparse
import dataclasses
import enum
import functools
import hashlib
import importlib.util
import inspect
import json
import math
import os
import struct
import sys
import time
import types

import numpy as np
import torch
import torch.nn.functional as F

PINNED_REPO = "Wan-Video/Wan2.1"
PINNED_COMMIT = "9737cba9c1c3c4d04b33fcad41c111989865d315"
# sha256 of the official files at PINNED_COMMIT; a mismatch is reported, not fatal.
PINNED_SHA256 = {
    "modules/model.py":
        "c1572ade3bf7345bd4c00d4a19535788fab62f9c08b5aeb15f6d01f4435bb47a",
    "utils/fm_solvers_unipc.py":
        "0dec8c7ed17f6f2049275c6848113314da6ccec1c8db5bdc89df43c05c6038d9",
}

PRESETS = {
    # Tiny model of the released structure: the committed goldens.
    "tiny": dict(dim=64, ffn_dim=128, freq_dim=256, num_heads=2, num_layers=2,
                 text_dim=32, text_len=512, frames=3, height=6, width=10,
                 ctx_len=7, neg_ctx_len=11, prefix="tiny_dit"),
    # Released shapes (wan/configs/wan_t2v_1_3B.py, wan_t2v_14B.py); a small
    # latent keeps the token count low (grid 2 x 3 x 4 = 24 tokens).
    "t2v-1.3B": dict(dim=1536, ffn_dim=8960, freq_dim=256, num_heads=12,
                     num_layers=30, text_dim=4096, text_len=512, frames=2,
                     height=6, width=8, ctx_len=7, neg_ctx_len=11,
                     prefix="wan13b_dit"),
    "t2v-14B": dict(dim=5120, ffn_dim=13824, freq_dim=256, num_heads=40,
                    num_layers=40, text_dim=4096, text_len=512, frames=2,
                    height=6, width=8, ctx_len=7, neg_ctx_len=11,
                    prefix="wan14b_dit"),
}

# --------------------------------------------------------------------------
# Stand-ins for packages the official files import
# --------------------------------------------------------------------------


class _Config(dict):
    """diffusers' FrozenDict: a dict whose keys are also attributes."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError as exc:
            raise AttributeError(name) from exc


class ConfigMixin:
    """Minimal diffusers.configuration_utils.ConfigMixin: keeps the
    constructor arguments in `self.config` (attribute access), which is all
    the official scheduler reads (`self.config.shift`, ...)."""

    config_name = "config.json"
    ignore_for_config = []

    def register_to_config(self, **kwargs):
        cfg = dict(self.__dict__.get("_internal_dict", {}))
        cfg.update(kwargs)
        object.__setattr__(self, "_internal_dict", _Config(cfg))

    @property
    def config(self):
        return self.__dict__["_internal_dict"]


def register_to_config(init):
    """Minimal diffusers register_to_config decorator: records every
    constructor argument (defaults included, `ignore_for_config` excluded)
    before the constructor body runs, as diffusers does."""
    sig = inspect.signature(init)

    @functools.wraps(init)
    def inner(self, *args, **kwargs):
        bound = sig.bind(self, *args, **kwargs)
        bound.apply_defaults()
        cfg = {k: v for k, v in bound.arguments.items() if k != "self"}
        for k in getattr(type(self), "ignore_for_config", []):
            cfg.pop(k, None)
        self.register_to_config(**cfg)
        init(self, *args, **kwargs)

    return inner


class ModelMixin(torch.nn.Module):
    """Minimal diffusers ModelMixin: a plain nn.Module (loading/saving helpers
    are not used here)."""


class SchedulerMixin:
    """Minimal diffusers SchedulerMixin (only loading helpers in diffusers)."""
    config_name = "scheduler_config.json"


@dataclasses.dataclass
class SchedulerOutput:
    prev_sample: torch.Tensor


class KarrasDiffusionSchedulers(enum.Enum):
    # Only iterated for `_compatibles` (a list of names); values irrelevant.
    DDIMScheduler = 1
    DPMSolverMultistepScheduler = 2
    UniPCMultistepScheduler = 3


def deprecate(*args, **kwargs):
    return None


def is_scipy_available():
    # scipy is only used for beta/exponential sigmas, which the flow
    # scheduler does not offer.
    return False


class AttentionTap:
    """Records the inputs/outputs of selected calls of the attention
    stand-in (used to capture block 0's q/k/v after RMSNorm and RoPE)."""

    def __init__(self):
        self.active = False
        self.calls = []

    def record(self, q, k, v, out):
        if self.active:
            self.calls.append(
                tuple(t.detach().float().cpu().clone() for t in (q, k, v, out)))


ATTN_TAP = AttentionTap()
ATTN_OPTIONS = {"round_qkv_bf16": False}


def _sdpa_f32(q, k, v, mask, scale):
    """softmax(q k^T * scale + mask) v, float32; q, k, v: [B, N, L, D]."""
    if hasattr(F, "scaled_dot_product_attention"):
        kwargs = dict(attn_mask=mask, dropout_p=0.0, is_causal=False)
        if scale is not None:
            kwargs["scale"] = scale
        try:
            from torch.nn.attention import SDPBackend, sdpa_kernel
            with sdpa_kernel(SDPBackend.MATH):
                return F.scaled_dot_product_attention(q, k, v, **kwargs)
        except ImportError:
            return F.scaled_dot_product_attention(q, k, v, **kwargs)
    # PyTorch < 2.0 (CPU smoke tests only): the same computation by hand.
    s = (q @ k.transpose(-1, -2)) * (scale if scale is not None else
                                     1.0 / math.sqrt(q.size(-1)))
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf"))
    return torch.softmax(s, dim=-1) @ v


def flash_attention(q, k, v, q_lens=None, k_lens=None, dropout_p=0.,
                    softmax_scale=None, q_scale=None, causal=False,
                    window_size=(-1, -1), deterministic=False,
                    dtype=torch.bfloat16, version=None):
    """Stand-in for wan.modules.attention.flash_attention, same signature and
    semantics (q: [B, Lq, N, D], k/v: [B, Lk, N, D], keys past k_lens[b]
    masked, scale 1/sqrt(D)), computed with PyTorch SDPA in float32. The
    official wrapper casts q, k, v to bf16 for flash-attn; that rounding is
    skipped unless --autocast bf16 asks for the official precision."""
    assert dropout_p == 0 and not causal and q_scale is None
    assert tuple(window_size) == (-1, -1), "windowed attention not supported"
    b, lq, lk, out_dtype = q.size(0), q.size(1), k.size(1), q.dtype
    if q_lens is not None:
        assert all(int(n) == lq for n in q_lens), "padded queries unsupported"
    qf, kf, vf = q.float(), k.float(), v.float()
    if ATTN_OPTIONS["round_qkv_bf16"]:
        qf, kf, vf = (t.to(torch.bfloat16).float() for t in (qf, kf, vf))
    mask = None
    if k_lens is not None:
        lens = torch.as_tensor(k_lens, device=q.device).view(b, 1, 1, 1)
        mask = torch.arange(lk, device=q.device).view(1, 1, 1, lk) < lens
    out = _sdpa_f32(qf.transpose(1, 2), kf.transpose(1, 2),
                    vf.transpose(1, 2), mask, softmax_scale)
    out = out.transpose(1, 2).contiguous()
    if ATTN_OPTIONS["round_qkv_bf16"]:
        out = out.to(torch.bfloat16)
    ATTN_TAP.record(q, k, v, out)
    return out.type(out_dtype)


def _module(name, **attrs):
    m = types.ModuleType(name)
    m.__dict__.update(attrs)
    m.__path__ = []  # a package; nothing is ever loaded from disk through it
    sys.modules[name] = m
    return m


def _load_file(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def load_official(wan_src):
    """Imports the official model and scheduler files under their package
    names (wan.modules.model, wan.utils.fm_solvers_unipc) with stand-in
    parent packages, so wan/__init__.py and its imports never run."""
    # The stand-ins always shadow an installed diffusers, so that every run
    # goes through the same code.
    _module("diffusers")
    _module("diffusers.configuration_utils", ConfigMixin=ConfigMixin,
            register_to_config=register_to_config, FrozenDict=_Config)
    _module("diffusers.models")
    _module("diffusers.models.modeling_utils", ModelMixin=ModelMixin)
    _module("diffusers.schedulers")
    _module("diffusers.schedulers.scheduling_utils",
            KarrasDiffusionSchedulers=KarrasDiffusionSchedulers,
            SchedulerMixin=SchedulerMixin, SchedulerOutput=SchedulerOutput)
    _module("diffusers.utils", deprecate=deprecate,
            is_scipy_available=is_scipy_available)
    try:
        import torch.cuda.amp  # noqa: F401  (deprecated, still shipped)
    except ImportError:
        amp = types.ModuleType("torch.cuda.amp")
        amp.autocast = lambda enabled=True, dtype=None, cache_enabled=True: \
            torch.autocast("cuda", dtype=dtype, enabled=enabled)
        sys.modules["torch.cuda.amp"] = amp
        torch.cuda.amp = amp
    _module("wan")
    _module("wan.modules")
    _module("wan.utils")
    _module("wan.modules.attention", flash_attention=flash_attention,
            attention=flash_attention)
    model_mod = _load_file("wan.modules.model",
                           os.path.join(wan_src, "modules", "model.py"))
    sched_mod = _load_file("wan.utils.fm_solvers_unipc",
                           os.path.join(wan_src, "utils",
                                        "fm_solvers_unipc.py"))
    hashes = {}
    for rel in PINNED_SHA256:
        with open(os.path.join(wan_src, rel), "rb") as f:
            hashes["wan/" + rel] = hashlib.sha256(f.read()).hexdigest()
    return model_mod, sched_mod, hashes


# --------------------------------------------------------------------------
# safetensors I/O (the package when installed, else a minimal equivalent)
# --------------------------------------------------------------------------

_ST_DTYPES = {torch.float32: "F32", torch.float64: "F64", torch.int64: "I64",
              torch.int32: "I32", torch.bfloat16: "BF16",
              torch.float16: "F16"}


def save_safetensors(tensors, path, metadata):
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    try:
        from safetensors.torch import save_file
        save_file(tensors, path, metadata=metadata)
        return
    except ImportError:
        pass
    header, blobs, off = {"__metadata__": metadata}, [], 0
    for name in sorted(tensors):
        t = tensors[name]
        raw = t.view(torch.int16).numpy().tobytes() if t.dtype == \
            torch.bfloat16 else t.numpy().tobytes()
        header[name] = {"dtype": _ST_DTYPES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    hdr = json.dumps(header, separators=(",", ":")).encode()
    hdr += b" " * (-len(hdr) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hdr)))
        f.write(hdr)
        for raw in blobs:
            f.write(raw)


def load_safetensors(path):
    try:
        from safetensors.torch import load_file
        return load_file(path)
    except ImportError:
        pass
    np_types = {"F32": np.float32, "F64": np.float64, "I64": np.int64,
                "I32": np.int32, "F16": np.float16, "BF16": np.int16}
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        arr = np.frombuffer(data[a:b], dtype=np_types[info["dtype"]]).copy()
        t = torch.from_numpy(arr).reshape(info["shape"])
        out[name] = t.view(torch.bfloat16) if info["dtype"] == "BF16" else t
    return out


# --------------------------------------------------------------------------
# Random weights
# --------------------------------------------------------------------------


def randomise_weights(model, seed, weights_dtype):
    """Replaces EVERY parameter with seeded random values (CPU generator, in
    model.named_parameters() order), so no part of the model is a zero, an
    identity or a one (the official init zeroes the head and all biases and
    sets norm weights to one, which would hide bugs). Scales keep the
    activations O(1): weights N(0, 1/fan_in), biases N(0, 0.1^2), norm
    weights 1 + N(0, 0.1^2), modulation tables N(0, 0.3^2), the time
    projection halved so the gates stay moderate. With weights_dtype
    bfloat16 each value is rounded to bf16 (computation stays float32)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            shape = tuple(p.shape)
            r = torch.randn(shape, generator=gen, dtype=torch.float32)
            if name.endswith("modulation"):
                val = 0.3 * r
            elif name.endswith(".bias"):
                val = 0.1 * r
            elif len(shape) == 1:  # RMSNorm / affine LayerNorm weights
                val = 1.0 + 0.1 * r
            else:
                fan_in = math.prod(shape[1:])
                val = r / math.sqrt(fan_in)
                if name.startswith("time_projection"):
                    val = 0.5 * val
            if weights_dtype == "bfloat16":
                val = val.to(torch.bfloat16).float()
            p.copy_(val.to(p.dtype))


def weights_digest(model):
    """sha256 over the float32 bytes of every parameter in named order, plus
    (sum, sum |w|) per tensor: enough to verify regenerated weights."""
    h = hashlib.sha256()
    per = {}
    for name, p in model.named_parameters():
        t = p.detach().float().cpu().contiguous()
        h.update(name.encode())
        h.update(t.numpy().tobytes())
        per[name] = [float(t.double().sum()), float(t.double().abs().sum())]
    return {"sha256_float32_named_order": h.hexdigest(), "per_tensor": per}


# --------------------------------------------------------------------------
# An independent re-implementation (float64, from the fact sheet
# shared/reference/wan21-dit.md, NOT from the official code), used only to
# cross-check the official outputs and the layout conventions the C++ port
# will follow.
# --------------------------------------------------------------------------


def _lin(x, W, name, bias=True):
    y = x @ W[name + ".weight"].double().T
    return y + W[name + ".bias"].double() if bias else y


def _ln(x, eps, w=None, b=None):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    y = (x - mu) / torch.sqrt(var + eps)
    return y * w + b if w is not None else y


def _rms(x, w, eps):
    return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + eps) * w


def _gelu_tanh(u):
    return 0.5 * u * (1 + torch.tanh(math.sqrt(2 / math.pi) *
                                     (u + 0.044715 * u ** 3)))


def _attn(q, k, v):
    # q: [Lq, N, D], k/v: [Lk, N, D]
    s = torch.einsum("qnd,knd->nqk", q, k) / math.sqrt(q.size(-1))
    return torch.einsum("nqk,knd->qnd", torch.softmax(s, -1), v)


def _rope(x, ang):
    # x: [L, N, D] interleaved pairs (x[2k], x[2k+1]); ang: [L, D/2]
    c, s = torch.cos(ang)[:, None, :], torch.sin(ang)[:, None, :]
    xe, xo = x[..., 0::2], x[..., 1::2]
    out = torch.empty_like(x)
    out[..., 0::2] = xe * c - xo * s
    out[..., 1::2] = xe * s + xo * c
    return out


def independent_forward(W, cfg, x, t, ctx, taps=None):
    dev = x.device
    x = x.double()
    C, T, H, Wd = x.shape
    pt, ph, pw = cfg["patch_size"]
    dim, nh, eps = cfg["dim"], cfg["num_heads"], cfg["eps"]
    hd = dim // nh
    Ft, Hp, Wp = T // pt, H // ph, Wd // pw
    L = Ft * Hp * Wp
    # patchify: token n = (f*Hp + h)*Wp + w, patch vector (c, kt, kh, kw)
    p = x.reshape(C, Ft, pt, Hp, ph, Wp, pw).permute(1, 3, 5, 0, 2, 4, 6)
    p = p.reshape(L, C * pt * ph * pw)
    h = p @ W["patch_embedding.weight"].double().reshape(dim, -1).T + \
        W["patch_embedding.bias"].double()
    # time embedding: [cos, sin], cos first
    half = cfg["freq_dim"] // 2
    om = torch.pow(10000.0, -torch.arange(half, dtype=torch.float64,
                                          device=dev) / half)
    ang = float(t) * om
    sinus = torch.cat([torch.cos(ang), torch.sin(ang)])
    e = _lin(F.silu(_lin(sinus, W, "time_embedding.0")), W, "time_embedding.2")
    e0 = _lin(F.silu(e), W, "time_projection.1").reshape(6, dim)
    # text: zero-pad to text_len rows, then Linear-GELU(tanh)-Linear
    cp = torch.zeros(cfg["text_len"], cfg["text_dim"], dtype=torch.float64,
                     device=dev)
    cp[:ctx.shape[0]] = ctx.double()
    c = _lin(_gelu_tanh(_lin(cp, W, "text_embedding.0")), W,
             "text_embedding.2")
    # 3-D RoPE angles, axis widths d - 4*(d//6), 2*(d//6), 2*(d//6)
    widths = [hd - 4 * (hd // 6), 2 * (hd // 6), 2 * (hd // 6)]
    grids = torch.meshgrid(torch.arange(Ft), torch.arange(Hp),
                           torch.arange(Wp), indexing="ij")
    parts = []
    for pos, Da in zip(grids, widths):
        w_a = torch.pow(10000.0, -torch.arange(0, Da, 2, dtype=torch.float64)
                        / Da)
        parts.append(pos.reshape(L, 1).double() * w_a[None, :])
    rang = torch.cat(parts, 1).to(dev)
    if taps is not None:
        taps.update(patch_tokens=h, e=e, e0=e0, text_embedding=c)
    for i in range(cfg["num_layers"]):
        pre = f"blocks.{i}."
        m = W[pre + "modulation"].double()[0] + e0
        a = _ln(h, eps) * (1 + m[1]) + m[0]
        q = _rms(_lin(a, W, pre + "self_attn.q"),
                 W[pre + "self_attn.norm_q.weight"].double(), eps)
        k = _rms(_lin(a, W, pre + "self_attn.k"),
                 W[pre + "self_attn.norm_k.weight"].double(), eps)
        v = _lin(a, W, pre + "self_attn.v")
        q, k, v = (u.reshape(L, nh, hd) for u in (q, k, v))
        q, k = _rope(q, rang), _rope(k, rang)
        y = _lin(_attn(q, k, v).reshape(L, dim), W, pre + "self_attn.o")
        h = h + y * m[2]
        cn = _ln(h, eps, W[pre + "norm3.weight"].double(),
                 W[pre + "norm3.bias"].double())
        q = _rms(_lin(cn, W, pre + "cross_attn.q"),
                 W[pre + "cross_attn.norm_q.weight"].double(), eps)
        k = _rms(_lin(c, W, pre + "cross_attn.k"),
                 W[pre + "cross_attn.norm_k.weight"].double(), eps)
        v = _lin(c, W, pre + "cross_attn.v")
        y = _attn(q.reshape(L, nh, hd), k.reshape(-1, nh, hd),
                  v.reshape(-1, nh, hd)).reshape(L, dim)
        h = h + _lin(y, W, pre + "cross_attn.o")
        f = _ln(h, eps) * (1 + m[4]) + m[3]
        y = _lin(_gelu_tanh(_lin(f, W, pre + "ffn.0")), W, pre + "ffn.2")
        h = h + y * m[5]
        if taps is not None:
            taps[f"block.{i}"] = h
    hm = W["head.modulation"].double()[0] + e
    o = _lin(_ln(h, eps) * (1 + hm[1]) + hm[0], W, "head.head")
    if taps is not None:
        taps["head"] = o
    # unpatchify: per token (a, b, r, c) with c fastest
    out = o.reshape(Ft, Hp, Wp, pt, ph, pw, C).permute(6, 0, 3, 1, 4, 2, 5)
    return out.reshape(C, T, H, Wd)


def independent_schedule(steps, shift, num_train=1000):
    """sigma_max = 1 - 1/num_train as float32; linspace(sigma_max, 0, N+1)
    minus its last entry; shifted; timesteps = int64 truncation of
    num_train*sigma (float64); sigmas float32 with a final 0."""
    smax = float(np.float32(1.0 - 1.0 / num_train))
    s = np.linspace(smax, 0.0, steps + 1)[:-1]
    s = shift * s / (1 + (shift - 1) * s)
    ts = (s * num_train).astype(np.int64)
    sig = np.concatenate([s, [0.0]]).astype(np.float32)
    return sig, ts


def independent_unipc(sigmas, velocity_fn, x):
    """UniPC (bh2, order 2, predict-x0, lower_order_final) from the fact
    sheet's formulas, float64. velocity_fn(i, x_tilde) gives the guided
    velocity at step i for the uncorrected sample."""
    sig = [float(s) for s in sigmas]
    N = len(sig) - 1
    lam = [math.log(1 - s) - math.log(s) if s > 0 else math.inf for s in sig]
    xt = x.double()
    ms, x_prev, p_prev = [], None, None
    out = []
    for i in range(N):
        v = velocity_fn(i, xt).double()
        m = xt - sig[i] * v
        if i == 0:
            xc = xt
        else:
            hh = lam[i] - lam[i - 1]
            B = math.expm1(-hh)
            a_i = 1 - sig[i]
            base = (sig[i] / sig[i - 1]) * x_prev - a_i * B * ms[-1]
            if p_prev == 1:
                xc = base - a_i * B * 0.5 * (m - ms[-1])
            else:
                r = (lam[i - 2] - lam[i - 1]) / hh
                D = (ms[-2] - ms[-1]) / r
                g1 = B / (-hh) - 1
                b0 = g1 / B
                b1 = 2 * (g1 / (-hh) - 0.5) / B
                rho0 = (b0 - b1) / (1 - r)
                rho1 = b0 - rho0
                xc = base - a_i * B * (rho0 * D + rho1 * (m - ms[-1]))
        p = min(2, N - i, i + 1)
        ms.append(m)
        if sig[i + 1] == 0:
            xn = m  # final step: lambda = inf, x_N = x0 prediction
        else:
            hh = lam[i + 1] - lam[i]
            B = math.expm1(-hh)
            a_n = 1 - sig[i + 1]
            xn = (sig[i + 1] / sig[i]) * xc - a_n * B * m
            if p == 2:
                r = (lam[i - 1] - lam[i]) / hh
                xn = xn - a_n * B * 0.5 * (ms[-2] - m) / r
        x_prev, p_prev = xc, p
        xt = xn
        out.append(xn)
    return out


def rel_err(a, b):
    a, b = a.double().cpu(), b.double().cpu()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-300))


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--wan-src", required=True,
                    help="copy of the official wan/ folder")
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--preset", default="tiny", choices=sorted(PRESETS))
    for k in ("dim", "ffn_dim", "freq_dim", "num_heads", "num_layers",
              "text_dim", "text_len", "frames", "height", "width", "ctx_len",
              "neg_ctx_len"):
        ap.add_argument("--" + k.replace("_", "-"), type=int, default=None,
                        help="override the preset's " + k)
    ap.add_argument("--prefix", default=None, help="output file prefix")
    ap.add_argument("--seed", type=int, default=20250225,
                    help="seed of the weights; inputs use seed+1, seed+2, ...")
    ap.add_argument("--timestep", type=int, default=873,
                    help="timestep of the single forward")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--shift", type=float, default=5.0)
    ap.add_argument("--guide-scale", type=float, default=5.0)
    ap.add_argument("--weights-dtype", default="float32",
                    choices=["float32", "bfloat16"],
                    help="bfloat16: round the random weights to bf16 values "
                         "(computation stays float32)")
    ap.add_argument("--autocast", default="none", choices=["none", "bf16"],
                    help="bf16: run the DiT under bf16 autocast as "
                         "text2video.py does, with q/k/v rounded to bf16 as "
                         "the official attention wrapper does")
    ap.add_argument("--save-weights", default="auto",
                    choices=["auto", "yes", "no"],
                    help="auto: only when the model has < 50M parameters")
    ap.add_argument("--lean", default="auto", choices=["auto", "yes", "no"],
                    help="leave out block 0's cross-attention k, v, norm_k "
                         "(auto: for models of >= 50M parameters)")
    ap.add_argument("--weights-only", action="store_true",
                    help="build and randomise the model, write its weights "
                         "(PREFIX.safetensors, in --weights-dtype) and "
                         "PREFIX_weights.json (the digest), and stop: no "
                         "forward, no goldens; for shapes whose weights "
                         "are not saved by default, to regenerate them on "
                         "another machine and check the digest")
    ap.add_argument("--device", default=None, help="default: cuda if present")
    ap.add_argument("--wan-commit", default=PINNED_COMMIT,
                    help="official commit the --wan-src copy comes from")
    return ap.parse_args()


def write_weights_only(model, args, cfgp, prefix, model_kwargs, n_params,
                       digest, t0):
    """--weights-only: the randomised weights under their released names in
    --weights-dtype, and a small JSON with the digest to compare with the
    `weights_digest` of a full run's PREFIX_config.json."""
    wdtype = torch.bfloat16 if args.weights_dtype == "bfloat16" else \
        torch.float32
    meta = {"official_repo": PINNED_REPO, "official_commit": args.wan_commit,
            "seed": str(args.seed), "preset": args.preset}
    weights = {k: v.detach().to(wdtype).cpu()
               for k, v in model.state_dict().items()}
    path = os.path.join(args.out, prefix + ".safetensors")
    save_safetensors(weights, path, meta)
    del weights
    info = {"official": {"repo": PINNED_REPO, "commit": args.wan_commit},
            "wan_model": {k: list(v) if isinstance(v, tuple) else v
                          for k, v in model_kwargs.items()},
            "num_params": n_params,
            "weights": {"seed": args.seed, "dtype": args.weights_dtype,
                        "file": prefix + ".safetensors"},
            "environment": {"torch": torch.__version__},
            "weights_digest": digest}
    with open(os.path.join(args.out, prefix + "_weights.json"), "w") as f:
        json.dump(info, f, indent=1)
        f.write("\n")
    print(f"weights written to {path} ({time.time() - t0:.1f}s); sha256 "
          f"{digest['sha256_float32_named_order']}")
    return 0


def main():
    args = parse_args()
    cfgp = dict(PRESETS[args.preset])
    for k in list(cfgp):
        v = getattr(args, k, None)
        if v is not None:
            cfgp[k] = v
    prefix = cfgp.pop("prefix")
    os.makedirs(args.out, exist_ok=True)

    # float32 everywhere, no TF32 (matmuls and convolutions)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    device = torch.device(args.device or
                          ("cuda" if torch.cuda.is_available() else "cpu"))
    ATTN_OPTIONS["round_qkv_bf16"] = args.autocast == "bf16"

    model_mod, sched_mod, hashes = load_official(args.wan_src)
    for rel, want in PINNED_SHA256.items():
        if hashes["wan/" + rel] != want:
            print(f"WARNING: wan/{rel} differs from commit {PINNED_COMMIT}")

    model_kwargs = dict(model_type="t2v", patch_size=(1, 2, 2),
                        text_len=cfgp["text_len"], in_dim=16,
                        dim=cfgp["dim"], ffn_dim=cfgp["ffn_dim"],
                        freq_dim=cfgp["freq_dim"], text_dim=cfgp["text_dim"],
                        out_dim=16, num_heads=cfgp["num_heads"],
                        num_layers=cfgp["num_layers"], window_size=(-1, -1),
                        qk_norm=True, cross_attn_norm=True, eps=1e-6)
    t0 = time.time()
    model = model_mod.WanModel(**model_kwargs)
    model.eval().requires_grad_(False)
    randomise_weights(model, args.seed, args.weights_dtype)
    n_params = sum(p.numel() for p in model.parameters())
    digest = weights_digest(model)
    model.to(device)
    print(f"WanModel {n_params} params, built+randomised in "
          f"{time.time() - t0:.1f}s; device {device}", flush=True)

    if args.weights_only:
        return write_weights_only(model, args, cfgp, prefix, model_kwargs,
                                  n_params, digest, t0)

    big = n_params >= 50_000_000
    save_weights = args.save_weights == "yes" or (
        args.save_weights == "auto" and not big)
    # lean: leave out block 0's cross-attention k/v (text_len x dim each),
    # which would push a full-size forward file past a few MB
    lean = args.lean == "yes" or (args.lean == "auto" and big)
    wdtype = torch.bfloat16 if args.weights_dtype == "bfloat16" else \
        torch.float32
    meta = {"official_repo": PINNED_REPO, "official_commit": args.wan_commit,
            "seed": str(args.seed), "preset": args.preset}
    files = {}
    if save_weights:
        weights = {k: v.detach().to(wdtype).cpu()
                   for k, v in model.state_dict().items()}
        path = os.path.join(args.out, prefix + ".safetensors")
        save_safetensors(weights, path, meta)
        files[prefix + ".safetensors"] = sorted(weights)

    # ---------------- inputs ----------------
    T, H, Wd = cfgp["frames"], cfgp["height"], cfgp["width"]
    g_in = torch.Generator().manual_seed(args.seed + 1)
    x = torch.randn(16, T, H, Wd, generator=g_in)
    ctx = torch.randn(cfgp["ctx_len"], cfgp["text_dim"], generator=g_in)
    noise = torch.randn(16, T, H, Wd, generator=g_in)
    neg_ctx = torch.randn(cfgp["neg_ctx_len"], cfgp["text_dim"],
                          generator=g_in)
    pt, ph, pw = model_kwargs["patch_size"]
    # seq_len exactly as text2video.py computes it (sp_size 1)
    seq_len = math.ceil((H * Wd) / (ph * pw) * T)
    grid = [T // pt, H // ph, Wd // pw]

    autocast = (torch.autocast(device.type, dtype=torch.bfloat16)
                if args.autocast == "bf16" else None)

    def run_model(lat, t, c):
        tt = torch.tensor([t], dtype=torch.int64, device=device) \
            if not torch.is_tensor(t) else torch.stack([t]).to(device)
        if autocast is not None:
            with torch.autocast(device.type, dtype=torch.bfloat16):
                return model([lat.to(device)], t=tt, context=[c.to(device)],
                             seq_len=seq_len)[0]
        return model([lat.to(device)], t=tt, context=[c.to(device)],
                     seq_len=seq_len)[0]

    # ---------------- one forward with intermediates ----------------
    fwd = {"x": x, "t": torch.tensor([args.timestep], dtype=torch.int64),
           "context": ctx, "grid_sizes": torch.tensor(grid),
           "seq_len": torch.tensor([seq_len])}
    hooks = []

    def keep(name, fn=lambda o: o):
        def hook(mod, inp, out):
            fwd[name] = fn(out).detach().float().cpu().clone()
        return hook

    def tokens(o):  # [1, dim, F, H, W] -> [L, dim]
        return o.flatten(2).transpose(1, 2)[0]

    dim = cfgp["dim"]
    hooks.append(model.patch_embedding.register_forward_hook(
        keep("patch_tokens", tokens)))
    hooks.append(model.time_embedding.register_forward_pre_hook(
        lambda m, inp: fwd.__setitem__("t_sinusoid",
                                       inp[0][0].detach().float().cpu())))
    hooks.append(model.time_embedding.register_forward_hook(
        keep("e", lambda o: o[0])))
    hooks.append(model.time_projection.register_forward_hook(
        keep("e0", lambda o: o[0].reshape(6, dim))))
    hooks.append(model.text_embedding.register_forward_hook(
        keep("text_embedding", lambda o: o[0])))
    for i, blk in enumerate(model.blocks):
        hooks.append(blk.register_forward_hook(
            keep(f"block.{i}", lambda o: o[0])))
    b0 = model.blocks[0]
    for sub in ("self_attn", "cross_attn"):
        mod = getattr(b0, sub)
        hooks.append(mod.register_forward_hook(
            keep(f"block.0.{sub}", lambda o: o[0])))
        hooks.append(mod.norm_q.register_forward_hook(
            keep(f"block.0.{sub}.norm_q", lambda o: o[0])))
        hooks.append(mod.norm_k.register_forward_hook(
            keep(f"block.0.{sub}.norm_k", lambda o: o[0])))
    hooks.append(b0.ffn.register_forward_hook(
        keep("block.0.ffn", lambda o: o[0])))
    hooks.append(model.head.register_forward_hook(
        keep("head", lambda o: o[0])))
    ATTN_TAP.calls.clear()
    ATTN_TAP.active = True
    with torch.no_grad():
        vel = run_model(x, args.timestep, ctx)
    ATTN_TAP.active = False
    for h in hooks:
        h.remove()
    for j, sub in enumerate(("self_attn", "cross_attn")):
        q, k, v, o = ATTN_TAP.calls[j]
        fwd[f"block.0.{sub}.q"] = q[0]
        fwd[f"block.0.{sub}.k"] = k[0]
        fwd[f"block.0.{sub}.v"] = v[0]
        fwd[f"block.0.{sub}.attn"] = o[0]
    if lean:
        for k in ("k", "v", "norm_k"):
            del fwd["block.0.cross_attn." + k]
    fwd["velocity"] = vel.detach().float().cpu()
    path = os.path.join(args.out, prefix + "_forward.safetensors")
    save_safetensors(fwd, path, meta)
    files[prefix + "_forward.safetensors"] = sorted(fwd)
    print(f"forward done ({time.time() - t0:.1f}s)", flush=True)

    # ---------------- 4-step sampling, as wan/text2video.py ----------------
    sched = sched_mod.FlowUniPCMultistepScheduler(
        num_train_timesteps=1000, shift=1, use_dynamic_shifting=False)
    sched.set_timesteps(args.steps, device=device, shift=args.shift)
    timesteps = sched.timesteps
    smp = {"noise": noise, "context": ctx, "negative_context": neg_ctx,
           "sigmas": sched.sigmas.clone().float(),
           "timesteps": timesteps.cpu().clone()}
    seed_g = torch.Generator(device=device).manual_seed(args.seed + 3)
    latents = [noise.to(device)]
    with torch.no_grad():
        for i, t in enumerate(timesteps):
            cond = run_model(latents[0], t, ctx)
            uncond = run_model(latents[0], t, neg_ctx)
            pred = uncond + args.guide_scale * (cond - uncond)
            nxt = sched.step(pred.unsqueeze(0), t, latents[0].unsqueeze(0),
                             return_dict=False, generator=seed_g)[0]
            latents = [nxt.squeeze(0)]
            smp[f"velocity_cond.{i}"] = cond.float().cpu()
            smp[f"velocity_uncond.{i}"] = uncond.float().cpu()
            smp[f"velocity.{i}"] = pred.float().cpu()
            smp[f"x0_pred.{i}"] = sched.model_outputs[-1][0].float().cpu()
            smp[f"corrected.{i}"] = sched.last_sample[0].float().cpu()
            smp[f"latents.{i}"] = latents[0].float().cpu()
    smp["latents"] = latents[0].float().cpu().clone()
    # the default 50-step schedule, for the C++ schedule code
    s50 = sched_mod.FlowUniPCMultistepScheduler(
        num_train_timesteps=1000, shift=1, use_dynamic_shifting=False)
    s50.set_timesteps(50, device="cpu", shift=5.0)
    smp["schedule50.sigmas"] = s50.sigmas.clone().float()
    smp["schedule50.timesteps"] = s50.timesteps.clone()
    path = os.path.join(args.out, prefix + "_sample.safetensors")
    save_safetensors(smp, path, meta)
    files[prefix + "_sample.safetensors"] = sorted(smp)
    print(f"sampling done ({time.time() - t0:.1f}s)", flush=True)

    # ---------------- cross-checks ----------------
    checks = {}
    with torch.no_grad():
        W = {k: v.to(device) for k, v in model.state_dict().items()}
        taps = {}
        ind = independent_forward(W, model_kwargs, x.to(device),
                                  args.timestep, ctx.to(device), taps)
        checks["independent_forward.velocity"] = rel_err(fwd["velocity"], ind)
        for name in ["patch_tokens", "e", "e0", "text_embedding", "head"] + \
                [f"block.{i}" for i in range(cfgp["num_layers"])]:
            checks["independent_forward." + name] = rel_err(fwd[name],
                                                            taps[name])
        sig_i, ts_i = independent_schedule(args.steps, args.shift)
        checks["independent_schedule.sigmas"] = rel_err(
            smp["sigmas"], torch.from_numpy(sig_i))
        checks["independent_schedule.timesteps_equal"] = bool(
            np.array_equal(smp["timesteps"].numpy(), ts_i))
        sig50, ts50 = independent_schedule(50, 5.0)
        checks["independent_schedule50.timesteps_equal"] = bool(
            np.array_equal(smp["schedule50.timesteps"].numpy(), ts50))
        checks["independent_schedule50.sigmas"] = rel_err(
            smp["schedule50.sigmas"], torch.from_numpy(sig50))
        # solver alone, fed the official guided velocities
        lat = independent_unipc(smp["sigmas"],
                                lambda i, xt: smp[f"velocity.{i}"], noise)
        checks["independent_unipc_given_velocities"] = max(
            rel_err(smp[f"latents.{i}"], lat[i]) for i in range(args.steps))
        # everything independent: forward + CFG + solver
        g = args.guide_scale

        def ind_vel(i, xt):
            tt = int(smp["timesteps"][i])
            xd = xt.to(device)
            c = independent_forward(W, model_kwargs, xd, tt, ctx.to(device))
            u = independent_forward(W, model_kwargs, xd, tt,
                                    neg_ctx.to(device))
            return (u + g * (c - u)).cpu()

        lat = independent_unipc(smp["sigmas"], ind_vel, noise)
        checks["independent_sampling.latents"] = max(
            rel_err(smp[f"latents.{i}"], lat[i]) for i in range(args.steps))
        # reload the written files and rerun the official model on them
        if save_weights:
            m2 = model_mod.WanModel(**model_kwargs).eval().requires_grad_(False)
            sd = load_safetensors(os.path.join(args.out,
                                               prefix + ".safetensors"))
            m2.load_state_dict({k: v.float() for k, v in sd.items()})
            m2.to(device)
            f2 = load_safetensors(os.path.join(
                args.out, prefix + "_forward.safetensors"))
            v2 = m2([f2["x"].to(device)], t=f2["t"].to(device),
                    context=[f2["context"].to(device)],
                    seq_len=int(f2["seq_len"][0]))[0]
            checks["reload_official_forward.velocity"] = rel_err(
                f2["velocity"], v2)
    sanity = {}
    for fname in files:
        data = load_safetensors(os.path.join(args.out, fname))
        for k, v in data.items():
            vf = v.double()
            assert torch.isfinite(vf).all(), (fname, k)
            if v.is_floating_point() and v.numel() > 1 and \
                    not k.startswith("schedule50"):
                assert float(vf.std()) > 0, (fname, k, "constant tensor")
        sanity[fname] = {k: [str(v.dtype).replace("torch.", ""),
                             list(v.shape), float(v.double().abs().max())]
                         for k, v in sorted(data.items())}
    info = {f"velocity_cond_vs_uncond.{i}": rel_err(
        smp[f"velocity_cond.{i}"], smp[f"velocity_uncond.{i}"])
        for i in range(args.steps)}
    for k, v in checks.items():
        print(f"check {k}: {v}")
    for k, v in info.items():
        print(f"info {k}: {v:.4g}")
    for fname, inv in sanity.items():
        print(f"== {fname}")
        for k, (dt, shp, amax) in inv.items():
            print(f"  {k:32s} {dt:8s} {shp}  max|.|={amax:.4g}")

    env = {"torch": torch.__version__, "device": str(device),
           "device_name": torch.cuda.get_device_name(device)
           if device.type == "cuda" else "cpu",
           "allow_tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
           "allow_tf32_cudnn": torch.backends.cudnn.allow_tf32}
    config = {
        "official": {"repo": PINNED_REPO, "commit": args.wan_commit,
                     "files_sha256": hashes},
        "wan_model": {k: list(v) if isinstance(v, tuple) else v
                      for k, v in model_kwargs.items()},
        "num_params": n_params,
        "weights": {"seed": args.seed, "dtype": args.weights_dtype,
                    "saved": save_weights,
                    "init": inspect.getdoc(randomise_weights)},
        "forward": {"latent_shape": [16, T, H, Wd], "grid_sizes": grid,
                    "seq_len": seq_len, "timestep": args.timestep,
                    "context_len": cfgp["ctx_len"]},
        "sample": {
            "scheduler": "FlowUniPCMultistepScheduler",
            "constructor": {"num_train_timesteps": 1000, "shift": 1,
                            "use_dynamic_shifting": False},
            "scheduler_config": {k: v for k, v in sched.config.items()},
            "set_timesteps": {"num_inference_steps": args.steps,
                              "shift": args.shift},
            "guide_scale": args.guide_scale,
            "context_len": cfgp["ctx_len"],
            "negative_context_len": cfgp["neg_ctx_len"],
            "seq_len": seq_len},
        "inputs": "torch.Generator().manual_seed(seed + 1) draws, in order: "
                  "x, context, noise, negative_context (torch.randn, float32)",
        "precision": {"compute": "float32", "autocast": args.autocast,
                      "attention": "stand-in: PyTorch SDPA (math backend), "
                                   "float32 q/k/v"
                                   + (", q/k/v rounded to bf16"
                                      if args.autocast == "bf16" else "")},
        "environment": env,
        "checks_max_rel_err": checks,
        "info_rel_diff": info,
        "weights_digest": digest,
    }
    with open(os.path.join(args.out, prefix + "_config.json"), "w") as f:
        json.dump(config, f, indent=1, sort_keys=False)
        f.write("\n")
    tol = 1e-4 if args.autocast == "none" else 5e-2
    bad = [k for k, v in checks.items()
           if (isinstance(v, bool) and not v) or
           (isinstance(v, float) and v > tol)]
    print("checks:", "FAILED " + ", ".join(bad) if bad else "all passed",
          f"({time.time() - t0:.1f}s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
