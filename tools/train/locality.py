"""Attention locality for fine-tuning and for masked reference sampling (issue 6).

The shipped model spreads attention over far frames, so no block-sparse mask keeps 30 dB at the
densities issue 6 asks for (bench/RESULTS.md, section "Ceiling"). Radial Attention and Sliding
Tile Attention adapt their models to the mask by fine-tuning; here the fine-tune keeps the dense
model and adds a penalty on the softmax mass each self-attention call puts outside a mask, so that
the dense run (the baseline) and the masked run agree.

Masks are predicates over token coordinates in frame-major order (tokens of a (T, Hp, Wp) patch
grid), written to match the C++ rules of attention/:
  * `temporal`: `window:tile=1xHpxWp,window=3x1x1` (three whole frames, window clamped at the
    ends so it stays three frames, plus the first frame as a sink);
  * `radial3d`: `radial3d:decay=D` with its default 1x8x8 tiles (attention/mask/radial.h).
"""
import math

import torch


def coords(grid, device):
    """(N,3) int64 (t, h, w) of every token of a frame-major (T, Hp, Wp) grid."""
    T, H, W = grid
    t = torch.arange(T, device=device).repeat_interleave(H * W)
    h = torch.arange(H, device=device).repeat_interleave(W).repeat(T)
    w = torch.arange(W, device=device).repeat(T * H)
    return torch.stack([t, h, w], dim=1)


def temporal_allowed(cq, ck, grid, frames=3, sink=True):
    """(Rq,3), (Nk,3) coordinates -> (Rq,Nk) bool: key frame inside the query's clamped window."""
    T = grid[0]
    n = min(frames, T)
    start = (cq[:, 0] - frames // 2).clamp(min=0, max=T - n)
    kt = ck[None, :, 0]
    ok = (kt >= start[:, None]) & (kt < start[:, None] + n)
    if sink:
        ok |= kt == 0
    return ok


def radial3d_allowed(cq, ck, grid, decay=0.5, tile=(8, 8), sink=True):
    """The pair rule of attention/mask/radial.cpp (Radial3dMask::allowed), vectorised."""
    _, H, W = grid
    th, tw = -(-H // tile[0]), -(-W // tile[1])
    dt = (cq[:, None, 0] - ck[None, :, 0]).abs()
    g = torch.floor(torch.log2(dt.clamp(min=1).double())).long() + 1  # bit length for dt >= 1
    scale = torch.pow(2.0, (g - 2).double())
    area = th * tw / (scale * scale)
    factor = torch.where(area < 1.0, torch.floor(1.0 / area), torch.ones_like(area)).long()
    freq_ok = (dt % factor) == 0

    def inside(tiles, size, qc, kc):
        n = torch.floor(tiles * decay / scale + 0.5).long().clamp(min=1, max=tiles)
        qt, kt = (qc // size)[:, None], (kc // size)[None, :]
        start = torch.minimum(torch.maximum(qt - n // 2, torch.zeros_like(n)), tiles - n)
        return (kt >= start) & (kt < start + n)

    ok = freq_ok & inside(th, tile[0], cq[:, 1], ck[:, 1]) & inside(tw, tile[1], cq[:, 2], ck[:, 2])
    ok |= dt <= 1
    if sink:
        ok |= ck[None, :, 0] == 0
    return ok


MASKS = {"temporal": temporal_allowed, "radial3d": radial3d_allowed}


def mask_for(name, grid, device, rows=None):
    """(R,N) bool mask of `name` for the query rows `rows` (all rows if None)."""
    c = coords(grid, device)
    cq = c if rows is None else c[rows]
    return MASKS[name](cq, c, grid)


def full_mask(name, grid, device, chunk=1024):
    """(N,N) bool mask of `name`, built in row chunks so the float64 temporaries stay small."""
    N = grid[0] * grid[1] * grid[2]
    return torch.cat([mask_for(name, grid, device, rows=torch.arange(s, min(N, s + chunk), device=device))
                      for s in range(0, N, chunk)])


class LocalityPenalty:
    """Stands in for model.attention while training: runs `dense` and, for self-attention calls
    of grids with more than one frame, records the softmax mass that `rows` sampled query rows
    put outside the mask (float32, with gradients). `take()` returns the mean over the calls."""

    def __init__(self, dense, mask, rows, seed=0):
        self.dense, self.mask, self.rows = dense, mask, rows
        self.grid = None
        self.masses = []
        self.gen = torch.Generator()
        self.gen.manual_seed(seed)
        self._cache = {}

    def __call__(self, q, k, v):
        N = q.shape[2]
        if self.grid is not None and k.shape[2] == N and self.grid[0] > 1:
            assert N == self.grid[0] * self.grid[1] * self.grid[2], (N, self.grid)
            key = (self.grid, q.device)
            if key not in self._cache:
                self._cache[key] = mask_for(self.mask, self.grid, q.device)
            r = torch.randperm(N, generator=self.gen)[: self.rows].to(q.device)
            logits = (q[:, :, r].float() @ k.float().transpose(-1, -2)) / math.sqrt(q.shape[-1])
            p = torch.softmax(logits, dim=-1)
            outside = ~self._cache[key][r]
            self.masses.append((p * outside).sum(-1).mean())
        return self.dense(q, k, v)

    def take(self):
        if not self.masses:
            return None
        m = torch.stack(self.masses).mean()
        self.masses = []
        return m


def masked_attention(q, k, v, m):
    """Exact softmax attention over the pairs of the (N, N) bool mask m."""
    if hasattr(torch.nn.functional, "scaled_dot_product_attention"):
        return torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=m)
    s = (q.float() @ k.float().transpose(-1, -2)) / math.sqrt(q.shape[-1])  # PyTorch < 2.0 (CPU smoke runs)
    return (torch.softmax(s.masked_fill(~m, float("-inf")), dim=-1) @ v.float()).to(v.dtype)


class MaskedAttention:
    """Stands in for model.attention while sampling: self-attention under the mask `name`
    (exact masked softmax), cross-attention dense. Counts the pairs it computes."""

    def __init__(self, dense, name, grid):
        self.dense, self.name, self.grid = dense, name, grid
        self.pairs = self.total = 0
        self._dev = {}

    def __call__(self, q, k, v):
        N = q.shape[2]
        if k.shape[2] != N:
            return self.dense(q, k, v)
        if q.device not in self._dev:
            self._dev[q.device] = full_mask(self.name, self.grid, q.device)
        m = self._dev[q.device]
        self.pairs += int(m.sum()) * q.shape[0] * q.shape[1]
        self.total += N * N * q.shape[0] * q.shape[1]
        return masked_attention(q, k, v, m)


class BlockSparseAttention:
    """Stands in for model.attention while training under a mask (issue 21, the length extension
    of Radial Attention): self-attention of grids with more than one frame runs under the exact
    pair mask `name`, block-sparse through FlexAttention where PyTorch has it (the blocks no pair
    reaches are skipped, forward and backward), else as MaskedAttention does; cross-attention and
    single frames stay dense. Set `grid` before each forward."""

    def __init__(self, dense, name):
        self.dense, self.name = dense, name
        self.grid = None
        self.density = {}
        self._masks = {}
        try:
            from torch.nn.attention.flex_attention import create_block_mask, flex_attention
            self._create = create_block_mask
            self._flex = torch.compile(flex_attention, dynamic=False)
        except ImportError:
            self._flex = None

    def _mask(self, N, device):
        key = (self.grid, device)
        if key not in self._masks:
            m = full_mask(self.name, self.grid, device)
            self.density[self.grid] = m.float().mean().item()
            if self._flex is not None:
                self._masks[key] = self._create(lambda b, h, q, k: m[q, k], None, None, N, N, device=device)
            else:
                self._masks[key] = m
        return self._masks[key]

    def __call__(self, q, k, v):
        N = q.shape[2]
        if self.grid is None or k.shape[2] != N or self.grid[0] <= 1:
            return self.dense(q, k, v)
        m = self._mask(N, q.device)
        if self._flex is not None:
            return self._flex(q, k, v, block_mask=m)
        return masked_attention(q, k, v, m)
