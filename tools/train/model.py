"""The ditgen DiT in PyTorch, exactly as docs/model.md describes it.

Parameter names equal the HDF5 tensor names of docs/model.md section 10, so the export is
a plain state_dict dump. Runs on PyTorch 1.13 (CPU, plain attention) and 2.x
(F.scaled_dot_product_attention). Under bf16 autocast (training) it keeps Wan's precision
split: time embedding, head, norms, modulation and the residual stream in float32; the
linears and attention in bf16. Without autocast everything is float32 (the reference).
"""
import math
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class DiTConfig:
    in_channels: int = 1
    patch_t: int = 1
    patch_h: int = 4
    patch_w: int = 4
    dim: int = 256
    ffn_dim: int = 768
    num_heads: int = 4
    num_layers: int = 8
    freq_dim: int = 256
    ctx_len: int = 2
    ctx_dim: int = 256
    num_classes: int = 10
    eps: float = 1e-6
    rope_theta: float = 10000.0
    sample_shift: float = 3.0
    sample_steps: int = 20
    sample_cfg: float = 4.0
    frame_height: int = 64
    frame_width: int = 64

    @property
    def head_dim(self):
        return self.dim // self.num_heads

    @property
    def patch(self):
        return (self.patch_t, self.patch_h, self.patch_w)

    @property
    def patch_values(self):
        return self.patch_t * self.patch_h * self.patch_w * self.in_channels

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, d):
        """From a mapping (e.g. HDF5 root attributes); every key is required."""
        kw = {}
        for f in fields(cls):
            if f.name not in d:
                raise KeyError(f"config key {f.name} missing")
            kw[f.name] = float(d[f.name]) if isinstance(f.default, float) else int(d[f.name])
        return cls(**kw)


HAS_SDPA = hasattr(F, "scaled_dot_product_attention")


def attention(q, k, v):
    """q (B,NH,Nq,Dh), k/v (B,NH,Nk,Dh) -> (B,NH,Nq,Dh); softmax(q k^T / sqrt(Dh)) v."""
    if HAS_SDPA:
        return F.scaled_dot_product_attention(q, k, v)
    scale = 1.0 / math.sqrt(q.shape[-1])
    B, NH, Nq, Dh = q.shape
    q = (q * scale).contiguous()
    kt = k.transpose(-1, -2).contiguous()
    v = v.contiguous()
    out = []
    step = max(16, (1 << 21) // max(1, B * NH * k.shape[2]))  # query chunks: scores stay in cache
    for s in range(0, Nq, step):
        a = torch.matmul(q[:, :, s:s + step], kt)
        out.append(torch.matmul(torch.softmax(a, dim=-1), v))
    return torch.cat(out, dim=2)


def sinusoid(t, freq_dim):
    """t (B,) float timesteps -> (B, freq_dim) float32, [cos | sin], computed in float64."""
    half = freq_dim // 2
    t = t.to(torch.float64)
    omega = torch.pow(10000.0, -torch.arange(half, dtype=torch.float64, device=t.device) / half)
    arg = t[:, None] * omega[None, :]
    return torch.cat([torch.cos(arg), torch.sin(arg)], dim=1).to(torch.float32)


def rope_axis_dims(head_dim):
    """Real dims per axis (t, h, w): Dh - 4*(Dh//6), 2*(Dh//6), 2*(Dh//6)."""
    return head_dim - 4 * (head_dim // 6), 2 * (head_dim // 6), 2 * (head_dim // 6)


def rope_tables(grid, head_dim, theta, device, riflex_k=0):
    """cos, sin (N, Dh/2) float32 for the patch grid (Tp,Hp,Wp), token order frame-major.
    riflex_k > 0: RIFLEx, temporal pair riflex_k (1-based) at 0.9*2*pi/Tp per frame (the engine's --riflex)."""
    Tp, Hp, Wp = grid
    dims = rope_axis_dims(head_dim)
    coords = torch.meshgrid(
        torch.arange(Tp, dtype=torch.float64, device=device),
        torch.arange(Hp, dtype=torch.float64, device=device),
        torch.arange(Wp, dtype=torch.float64, device=device),
        indexing="ij",
    )
    angles = []
    for axis, (c, d) in enumerate(zip(coords, dims)):
        j = torch.arange(d // 2, dtype=torch.float64, device=device)
        omega = torch.pow(float(theta), -2.0 * j / d)
        if riflex_k and axis == 0:
            omega[riflex_k - 1] = 0.9 * 2.0 * math.pi / Tp
        angles.append(c.reshape(-1, 1) * omega[None, :])
    ang = torch.cat(angles, dim=1)  # (N, Dh/2): t pairs, then h, then w
    return torch.cos(ang).to(torch.float32), torch.sin(ang).to(torch.float32)


def apply_rope(x, cos, sin):
    """x (B,N,NH,Dh) float32; interleaved pairs (x[2k], x[2k+1]) rotated by angle k."""
    B, N, NH, Dh = x.shape
    xp = x.reshape(B, N, NH, Dh // 2, 2)
    x0, x1 = xp[..., 0], xp[..., 1]
    c, s = cos[None, :, None, :], sin[None, :, None, :]
    return torch.stack([x0 * c - x1 * s, x0 * s + x1 * c], dim=-1).reshape(B, N, NH, Dh)


class RMSNorm(nn.Module):
    """y * rsqrt(mean(y^2) + eps) * w over the whole D, in float32."""

    def __init__(self, dim, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        x = x.float()
        return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + self.eps) * self.weight.float()


def layer_norm(x, eps):
    return F.layer_norm(x.float(), (x.shape[-1],), eps=eps)


class SelfAttention(nn.Module):
    def __init__(self, dim, num_heads, eps):
        super().__init__()
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.o = nn.Linear(dim, dim)
        self.norm_q = RMSNorm(dim, eps)
        self.norm_k = RMSNorm(dim, eps)

    def forward(self, a, cos, sin):
        B, N, D = a.shape
        NH = self.num_heads
        q = self.norm_q(self.q(a)).view(B, N, NH, D // NH)
        k = self.norm_k(self.k(a)).view(B, N, NH, D // NH)
        v = self.v(a).view(B, N, NH, D // NH)
        q = apply_rope(q, cos, sin)
        k = apply_rope(k, cos, sin)
        dt = v.dtype  # bf16 under autocast, float32 otherwise
        y = attention(q.to(dt).transpose(1, 2), k.to(dt).transpose(1, 2), v.transpose(1, 2))
        return self.o(y.transpose(1, 2).reshape(B, N, D))


class CrossAttention(nn.Module):
    def __init__(self, dim, num_heads, eps):
        super().__init__()
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.o = nn.Linear(dim, dim)
        self.norm_q = RMSNorm(dim, eps)
        self.norm_k = RMSNorm(dim, eps)

    def forward(self, c, ctx):
        B, N, D = c.shape
        L = ctx.shape[1]
        NH = self.num_heads
        q = self.norm_q(self.q(c)).view(B, N, NH, D // NH)
        k = self.norm_k(self.k(ctx)).view(B, L, NH, D // NH)
        v = self.v(ctx).view(B, L, NH, D // NH)
        dt = v.dtype
        y = attention(q.to(dt).transpose(1, 2), k.to(dt).transpose(1, 2), v.transpose(1, 2))
        return self.o(y.transpose(1, 2).reshape(B, N, D))


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        D = cfg.dim
        self.eps = cfg.eps
        self.modulation = nn.Parameter(torch.randn(1, 6, D) / D ** 0.5)
        self.self_attn = SelfAttention(D, cfg.num_heads, cfg.eps)
        self.norm3 = nn.LayerNorm(D, eps=cfg.eps, elementwise_affine=True)
        self.cross_attn = CrossAttention(D, cfg.num_heads, cfg.eps)
        self.ffn = nn.Sequential(nn.Linear(D, cfg.ffn_dim), nn.GELU(approximate="tanh"),
                                 nn.Linear(cfg.ffn_dim, D))

    def forward(self, x, e0, ctx, cos, sin):
        m = (self.modulation.float() + e0).unbind(1)  # 6 x (B, D), float32
        shift_sa, scale_sa, gate_sa = m[0][:, None], m[1][:, None], m[2][:, None]
        shift_ff, scale_ff, gate_ff = m[3][:, None], m[4][:, None], m[5][:, None]
        a = layer_norm(x, self.eps) * (1 + scale_sa) + shift_sa
        x = x + self.self_attn(a, cos, sin).float() * gate_sa
        c = F.layer_norm(x.float(), (x.shape[-1],), self.norm3.weight.float(), self.norm3.bias.float(), self.eps)
        x = x + self.cross_attn(c, ctx).float()
        f = layer_norm(x, self.eps) * (1 + scale_ff) + shift_ff
        x = x + self.ffn(f).float() * gate_ff
        return x


class Head(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        D = cfg.dim
        self.eps = cfg.eps
        self.modulation = nn.Parameter(torch.randn(1, 2, D) / D ** 0.5)
        self.head = nn.Linear(D, cfg.patch_values)

    def forward(self, x, e):
        m = (self.modulation.float() + e[:, None, :]).unbind(1)
        shift, scale = m[0][:, None], m[1][:, None]
        return F.linear(layer_norm(x, self.eps) * (1 + scale) + shift,
                        self.head.weight.float(), self.head.bias.float())


class DiT(nn.Module):
    def __init__(self, cfg: DiTConfig):
        super().__init__()
        self.cfg = cfg
        D = cfg.dim
        assert D % cfg.num_heads == 0 and cfg.head_dim % 2 == 0 and cfg.head_dim >= 6
        self.patch_embedding = nn.Conv3d(cfg.in_channels, D, kernel_size=cfg.patch, stride=cfg.patch)
        self.text_embedding = nn.Sequential(nn.Linear(cfg.ctx_dim, D), nn.GELU(approximate="tanh"),
                                            nn.Linear(D, D))
        self.time_embedding = nn.Sequential(nn.Linear(cfg.freq_dim, D), nn.SiLU(), nn.Linear(D, D))
        self.time_projection = nn.Sequential(nn.SiLU(), nn.Linear(D, 6 * D))
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg.num_layers)])
        self.head = Head(cfg)
        self.riflex_k = 0  # inference option, not a weight: RIFLEx (rope_tables)
        if cfg.num_classes > 0:
            self.label_embedding = nn.Embedding(cfg.num_classes + 1, cfg.ctx_dim)
            self.label_position = nn.Parameter(torch.zeros(cfg.ctx_len, cfg.ctx_dim))
        self.init_weights()

    def init_weights(self):
        """Wan2.1's initialisation (xavier linears, zero biases, N(0,.02) embedding MLPs, zero head)."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.xavier_uniform_(self.patch_embedding.weight.view(self.cfg.dim, -1))
        nn.init.zeros_(self.patch_embedding.bias)
        for seq in (self.text_embedding, self.time_embedding):
            for m in seq.modules():
                if isinstance(m, nn.Linear):
                    nn.init.normal_(m.weight, std=0.02)
        nn.init.zeros_(self.head.head.weight)
        if self.cfg.num_classes > 0:
            nn.init.normal_(self.label_embedding.weight, std=1.0)
            nn.init.normal_(self.label_position, std=0.1)

    # --- pieces, exposed for the golden-file writer -------------------------------------
    def raw_context(self, labels):
        """labels (B, L) int64 (num_classes = null) -> (B, L, E)."""
        return self.label_embedding(labels) + self.label_position[None]

    def embed_context(self, raw):
        return self.text_embedding(raw)

    def time_embed(self, t):
        """t (B,) float (= 1000 sigma) -> e (B, D), e0 (B, 6, D), float32 (autocast off)."""
        with torch.autocast(device_type=t.device.type, enabled=False):
            e = self.time_embedding(sinusoid(t, self.cfg.freq_dim))
            e0 = self.time_projection(e).view(-1, 6, self.cfg.dim)
        return e.float(), e0.float()

    def patchify(self, x):
        """x (B,C,T,H,W) -> tokens (B,N,D) float32, grid (Tp,Hp,Wp)."""
        y = self.patch_embedding(x)
        grid = tuple(y.shape[2:])
        return y.flatten(2).transpose(1, 2).float(), grid

    def unpatchify(self, y, grid):
        """y (B,N,P) with P laid out (a,b,r,c), c fastest -> (B,C,T,H,W)."""
        B = y.shape[0]
        Tp, Hp, Wp = grid
        pt, ph, pw = self.cfg.patch
        C = self.cfg.in_channels
        y = y.view(B, Tp, Hp, Wp, pt, ph, pw, C)
        y = y.permute(0, 7, 1, 4, 2, 5, 3, 6)  # B, C, Tp, pt, Hp, ph, Wp, pw
        return y.reshape(B, C, Tp * pt, Hp * ph, Wp * pw)

    def forward(self, x, t, labels=None, context=None, trace=None):
        """x (B,C,T,H,W) float32, t (B,) float, labels (B,L) int64 or context (B,L,E).

        Returns the velocity (B,C,T,H,W) float32. If `trace` is a dict it receives the
        intermediates (ctx, e, e0, x_embed, blocks [list of x after each block]).
        """
        if labels is not None:
            raw = self.raw_context(labels)
        else:
            raw = context
        ctx = self.embed_context(raw)
        e, e0 = self.time_embed(t)
        h, grid = self.patchify(x)
        cos, sin = rope_tables(grid, self.cfg.head_dim, self.cfg.rope_theta, x.device, self.riflex_k)
        if trace is not None:
            trace.update(raw=raw.float(), ctx=ctx.float(), e=e, e0=e0, x_embed=h, blocks=[])
        for blk in self.blocks:
            h = blk(h, e0, ctx, cos, sin)
            if trace is not None:
                trace["blocks"].append(h)
        with torch.autocast(device_type=x.device.type, enabled=False):
            y = self.head(h.float(), e)
        return self.unpatchify(y, grid)


def count_params(model):
    return sum(p.numel() for p in model.parameters())


if __name__ == "__main__":
    m = DiT(DiTConfig())
    print(f"{count_params(m):,} parameters")
    for k, v in m.state_dict().items():
        if not k.startswith("blocks.") or k.startswith("blocks.0."):
            print(k, tuple(v.shape))
