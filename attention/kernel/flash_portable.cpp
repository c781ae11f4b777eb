// Portable path of the flash-attention kernel: the same tiling and online softmax as the SIMD
// paths (kernel_tile.h), in plain loops over the 64 queries of a tile that compilers vectorise
// for whatever the build targets.
#include <algorithm>
#include <cmath>

#include "attention/kernel/kernel_impl.h"

namespace ditgen::attn::detail {

int tile_portable(const Problem& pb, const Item& it, const Item*, const Scratch& sc) {
  constexpr int T = kTile;
  const BlockMap& map = *pb.map;
  const int d = pb.head_dim;
  const int rows = item_rows(map, it);
  const int64_t q0 = int64_t(it.qb) * map.block + int64_t(it.sub) * T;
  const float* q = pb.q + q_offset(pb, it.head) + q0 * d;
  float* __restrict qt = sc.qt;
  float* __restrict o = sc.o;
  float* __restrict m = sc.m;
  float* __restrict l = sc.l;
  float* __restrict mu = sc.mu;
  float* __restrict alpha = sc.alpha;
  for (int c = 0; c < d; ++c)
    for (int i = 0; i < T; ++i) qt[c * T + i] = i < rows ? q[int64_t(i) * d + c] * pb.qscale : 0.0f;
  std::fill(m, m + T, -INFINITY);
  std::fill(l, l + T, 0.0f);
  std::fill(o, o + int64_t(d) * T, 0.0f);
  const float* kh = pb.k + kv_offset(pb, it.head);
  const float* vh = pb.v + kv_offset(pb, it.head);
  for_each_chunk(map, it, rows, sc.mask, [&](int64_t k0, int len, const uint64_t* mask, int64_t) {
    const float* K = kh + k0 * d;
    const float* V = vh + k0 * d;
    float bmax[T];
    std::fill(bmax, bmax + T, -INFINITY);
    for (int j = 0; j < len; ++j) {
      float* __restrict s = sc.s + j * T;
      std::fill(s, s + T, 0.0f);
      for (int c = 0; c < d; ++c) {
        const float kv = K[int64_t(j) * d + c];
        for (int i = 0; i < T; ++i) s[i] += kv * qt[c * T + i];
      }
      if (mask)
        for (int i = 0; i < T; ++i)
          if (!((mask[j] >> i) & 1u)) s[i] = -INFINITY;
      for (int i = 0; i < T; ++i) bmax[i] = std::max(bmax[i], s[i]);
    }
    for (int i = 0; i < T; ++i) {
      const float mn = std::max(m[i], bmax[i]);
      mu[i] = mn == -INFINITY ? 0.0f : mn;
      alpha[i] = std::exp2(m[i] - mu[i]);
      m[i] = mn;
      l[i] *= alpha[i];
    }
    for (int j = 0; j < len; ++j) {
      float* __restrict s = sc.s + j * T;
      for (int i = 0; i < T; ++i) {
        s[i] = std::exp2(s[i] - mu[i]);
        l[i] += s[i];
      }
    }
    for (int c = 0; c < d; ++c) {
      float* __restrict oc = o + c * T;
      for (int i = 0; i < T; ++i) oc[i] *= alpha[i];
      for (int j = 0; j < len; ++j) {
        const float vv = V[int64_t(j) * d + c];
        const float* __restrict p = sc.s + j * T;
        for (int i = 0; i < T; ++i) oc[i] += vv * p[i];
      }
    }
  });
  int empty = 0;
  write_lse(pb, it.head, q0, rows, m, l);
  float* out = pb.out + q_offset(pb, it.head) + q0 * d;
  for (int i = 0; i < rows; ++i) {
    if (row_empty(l[i])) ++empty;
    const float inv = row_scale(l[i]);
    for (int c = 0; c < d; ++c) out[int64_t(i) * d + c] = o[c * T + i] * inv;
  }
  return empty;
}

}  // namespace ditgen::attn::detail
