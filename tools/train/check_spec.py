"""Checks model.py against a literal float64 numpy reading of docs/model.md.

    python3 tools/train/check_spec.py

Builds small random models (also with C = 2 and pt = 2, where the patch layouts differ),
runs model.py in float32 and an independent numpy transcription of docs/model.md
(sections 2-7, written from the text, index formulas spelled out), and checks that they
agree. Also checks the noise generator of section 9 against a scalar Python transcription.
"""
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model import DiT, DiTConfig  # noqa: E402
from sample import noise  # noqa: E402


def ln(x, eps, w=None, b=None):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    y = (x - mu) / np.sqrt(var + eps)
    return y * w + b if w is not None else y


def rms(x, w, eps):
    return x / np.sqrt((x ** 2).mean(-1, keepdims=True) + eps) * w


def gelu_tanh(u):
    return 0.5 * u * (1 + np.tanh(math.sqrt(2 / math.pi) * (u + 0.044715 * u ** 3)))


def silu(u):
    return u / (1 + np.exp(-u))


def lin(W, name, x):
    return x @ W[name + ".weight"].T + W[name + ".bias"]


def softmax(a):
    a = a - a.max(-1, keepdims=True)
    e = np.exp(a)
    return e / e.sum(-1, keepdims=True)


def reference(W, cfg, x, t, labels):
    """x: (T,H,W,C) float64 for one sample; t float; labels list of L ints -> v (T,H,W,C)."""
    D, NH = cfg.dim, cfg.num_heads
    Dh = D // NH
    pt, ph, pw, C = cfg.patch_t, cfg.patch_h, cfg.patch_w, cfg.in_channels
    T, H, Wd, _ = x.shape
    Tp, Hp, Wp = T // pt, H // ph, Wd // pw
    N = Tp * Hp * Wp
    # section 2: patch embedding, token n = (tp*Hp+hp)*Wp+wp
    pw_ = W["patch_embedding.weight"]  # (D,C,pt,ph,pw)
    tok = np.zeros((N, D))
    coords = []
    for tp in range(Tp):
        for hp in range(Hp):
            for wp in range(Wp):
                n = (tp * Hp + hp) * Wp + wp
                coords.append((tp, hp, wp))
                v = np.array(W["patch_embedding.bias"], dtype=np.float64)
                for c in range(C):
                    for a in range(pt):
                        for b in range(ph):
                            for r in range(pw):
                                v = v + pw_[:, c, a, b, r] * x[tp * pt + a, hp * ph + b, wp * pw + r, c]
                tok[n] = v
    # section 3: time embedding
    half = cfg.freq_dim // 2
    om = 10000.0 ** (-np.arange(half) / half)
    emb = np.concatenate([np.cos(t * om), np.sin(t * om)]).astype(np.float32).astype(np.float64)
    e = lin(W, "time_embedding.2", silu(lin(W, "time_embedding.0", emb)))
    e0 = lin(W, "time_projection.1", silu(e)).reshape(6, D)
    # section 4: conditioning
    raw = np.stack([W["label_embedding.weight"][lab] + W["label_position"][j] for j, lab in enumerate(labels)])
    ctx = lin(W, "text_embedding.2", gelu_tanh(lin(W, "text_embedding.0", raw)))
    # section 6: rope angles per token (Dh/2 pairs)
    dt_ = Dh - 4 * (Dh // 6)
    dhw = 2 * (Dh // 6)
    theta = cfg.rope_theta
    ang = np.zeros((N, Dh // 2))
    for n, (tc, hc, wc) in enumerate(coords):
        k = 0
        for pos, Da in ((tc, dt_), (hc, dhw), (wc, dhw)):
            for j in range(Da // 2):
                ang[n, k] = pos * theta ** (-2 * j / Da)
                k += 1

    def rope(q):  # (N, Dh)
        out = np.empty_like(q)
        c, s = np.cos(ang), np.sin(ang)
        out[:, 0::2] = q[:, 0::2] * c - q[:, 1::2] * s
        out[:, 1::2] = q[:, 0::2] * s + q[:, 1::2] * c
        return out

    h = tok
    outs = []
    for i in range(cfg.num_layers):
        p = f"blocks.{i}."
        m = W[p + "modulation"][0] + e0
        a = ln(h, cfg.eps) * (1 + m[1]) + m[0]
        q = rms(lin(W, p + "self_attn.q", a), W[p + "self_attn.norm_q.weight"], cfg.eps)
        k = rms(lin(W, p + "self_attn.k", a), W[p + "self_attn.norm_k.weight"], cfg.eps)
        v = lin(W, p + "self_attn.v", a)
        ys = []
        for hh in range(NH):
            sl = slice(hh * Dh, hh * Dh + Dh)
            qh, kh = rope(q[:, sl]), rope(k[:, sl])
            ys.append(softmax(qh @ kh.T / math.sqrt(Dh)) @ v[:, sl])
        y = lin(W, p + "self_attn.o", np.concatenate(ys, 1))
        h = h + m[2] * y
        c = ln(h, cfg.eps, W[p + "norm3.weight"], W[p + "norm3.bias"])
        q = rms(lin(W, p + "cross_attn.q", c), W[p + "cross_attn.norm_q.weight"], cfg.eps)
        k = rms(lin(W, p + "cross_attn.k", ctx), W[p + "cross_attn.norm_k.weight"], cfg.eps)
        v = lin(W, p + "cross_attn.v", ctx)
        ys = []
        for hh in range(NH):
            sl = slice(hh * Dh, hh * Dh + Dh)
            ys.append(softmax(q[:, sl] @ k[:, sl].T / math.sqrt(Dh)) @ v[:, sl])
        h = h + lin(W, p + "cross_attn.o", np.concatenate(ys, 1))
        f = ln(h, cfg.eps) * (1 + m[4]) + m[3]
        y = lin(W, p + "ffn.2", gelu_tanh(lin(W, p + "ffn.0", f)))
        h = h + m[5] * y
        outs.append(h)
    hm = W["head.modulation"][0] + e
    y = lin(W, "head.head", ln(h, cfg.eps) * (1 + hm[1]) + hm[0])  # (N, P)
    out = np.zeros_like(x)
    for n, (tp, hp, wp) in enumerate(coords):
        for a in range(pt):
            for b in range(ph):
                for r in range(pw):
                    for c in range(C):
                        out[tp * pt + a, hp * ph + b, wp * pw + r, c] = y[n, ((a * ph + b) * pw + r) * C + c]
    return out, outs, ctx, e0


def check(cfg, T, H, Wd, seed):
    torch.manual_seed(seed)
    m = DiT(cfg).eval()
    with torch.no_grad():  # randomise everything (the head is zero-initialised)
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    W = {k: v.double().numpy() for k, v in m.state_dict().items()}
    x = noise(seed, (T, H, Wd, cfg.in_channels), batch=2)
    t = np.array([637.25, 81.5])
    labels = [[3, 7], [cfg.num_classes] * cfg.ctx_len]
    xt = torch.from_numpy(x).permute(0, 4, 1, 2, 3).contiguous()
    trace = {}
    with torch.no_grad():
        v = m(xt, torch.tensor(t, dtype=torch.float32), labels=torch.tensor(labels), trace=trace)
    v = v.permute(0, 2, 3, 4, 1).double().numpy()
    worst = 0.0
    for b in range(2):
        ref, blocks, ctx, e0 = reference(W, cfg, x[b].astype(np.float64), t[b], labels[b])
        pairs = [("v", v[b], ref), ("ctx", trace["ctx"][b].double().numpy(), ctx),
                 ("e0", trace["e0"][b].double().numpy(), e0)]
        pairs += [(f"block{i}", trace["blocks"][i][b].double().numpy(), r) for i, r in enumerate(blocks)]
        for name, got, want in pairs:
            err = np.abs(got - want).max() / (np.abs(want).max() + 1e-12)
            worst = max(worst, err)
            assert err < 1e-4, (name, b, err)
    print(f"C={cfg.in_channels} patch={cfg.patch} Dh={cfg.head_dim} video {T}x{H}x{Wd}: "
          f"max rel err {worst:.2e}")


def check_noise():
    M = (1 << 64) - 1

    def mix(z):
        z = (z + 0x9E3779B97F4A7C15) & M
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M
        return z ^ (z >> 31)

    seed = 12345
    key = mix(seed)
    got = noise(seed, (3, 2, 2, 1), batch=2).reshape(-1)
    for i in range(got.size):
        a, b = mix((key + 2 * i) & M), mix((key + 2 * i + 1) & M)
        u1 = ((a >> 11) + 1) * 2.0 ** -53
        u2 = (b >> 11) * 2.0 ** -53
        want = np.float32(math.sqrt(-2 * math.log(u1)) * math.cos(2 * math.pi * u2))
        assert got[i] == want, (i, got[i], want)
    print("noise generator: ok; seed 0 first values", noise(0, (4,))[0].tolist())


if __name__ == "__main__":
    torch.set_num_threads(os.cpu_count() or 1)
    check_noise()
    small = dict(dim=48, ffn_dim=64, num_heads=2, num_layers=2, freq_dim=32, ctx_len=2, ctx_dim=16)
    check(DiTConfig(**small), 2, 8, 12, 1)
    check(DiTConfig(in_channels=2, patch_t=2, patch_h=2, patch_w=4, **small), 4, 6, 8, 2)
    check(DiTConfig(num_heads=8, **{k: v for k, v in small.items() if k != "num_heads"}, ), 3, 8, 8, 3)
    print("model.py matches docs/model.md")
