#pragma once
// Float32 tile of the flash-attention kernel, generic over a SIMD vector type V. Included by the
// ISA translation units (kernel_avx2.cpp, kernel_avx512.cpp) after they define V; everything is
// in an anonymous namespace so each unit keeps its own copy, compiled for its ISA, and the linker
// can never hand one unit's instantiation to another.
//
// One item = up to 64 query rows of one query block. Layouts (kTile = 64):
//   qt[c][i]  queries packed channel-major, scaled by log2(e)/sqrt(Dh) (base-2 softmax)
//   s[j][i]   Sᵀ of the current key chunk, overwritten by P
//   o[c][i]   Oᵀ accumulator
// so every vector runs over queries: row maxima, sums and rescales are plain vector ops, K and V
// are read in place (broadcasts from their rows) and need no packing. V must provide:
//   Reg, W (lanes), QG (query vectors per micro-kernel), RS / RO (key rows / channels per
//   micro-kernel), zero, load, store, load_n, store_n (first n lanes), set1, fma, mul, add, max,
//   exp2 (exact 0 for inputs below -126, NaN for NaN), keep_or_neg_inf (lane i kept iff bit i), finite_or_zero
//   (-inf -> 0), transpose (W×W block in registers).
#include <cmath>
#include <cstdint>

#include "attention/kernel/kernel_impl.h"

namespace ditgen::attn::detail {
namespace {

template <class V>
struct FlashTile {
  using Reg = typename V::Reg;
  static constexpr int W = V::W;
  static constexpr int QV = kTile / W;  // vectors per 64 queries
  static constexpr int QG = V::QG;
  static constexpr int NG = QV / QG;  // query groups
  static constexpr int RS = V::RS;
  static constexpr int RO = V::RO;
  static_assert(QV % QG == 0, "query groups must tile 64 queries");

  // Sᵀ rows j .. j+R-1 (K points at key row j) for one query group (qt, s offset to its lanes).
  // One line of pf is prefetched per channel step, from line pfo on.
  template <int R>
  static inline void micro_s(const float* __restrict K, int d, const float* __restrict qt, float* __restrict s,
                             const uint64_t* mask, int i0, Reg* bmax, const Prefetch& pf, int pfo) {
    Reg acc[R][QG];
    for (int r = 0; r < R; ++r)
      for (int g = 0; g < QG; ++g) acc[r][g] = V::zero();
    for (int c = 0; c < d; ++c) {
      pf.line(pfo + c);
      Reg b[QG];
#pragma GCC unroll 8
      for (int g = 0; g < QG; ++g) b[g] = V::load(qt + c * kTile + g * W);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        const Reg a = V::set1(K[r * d + c]);
#pragma GCC unroll 8
        for (int g = 0; g < QG; ++g) acc[r][g] = V::fma(a, b[g], acc[r][g]);
      }
    }
    for (int r = 0; r < R; ++r)
      for (int g = 0; g < QG; ++g) {
        Reg x = acc[r][g];
        if (mask) x = V::keep_or_neg_inf(x, mask[r] >> (i0 + g * W));
        V::store(s + r * kTile + g * W, x);
        bmax[g] = V::max(bmax[g], x);
      }
  }

  // Oᵀ channels c .. c+R-1 (Vc points at V[k0][c]) for one query group: o = alpha·o + Vᵀ·P
  // (o = Vᵀ·P for the item's first chunk). One line of pf is prefetched per key step.
  template <int R>
  static inline void micro_pv(const float* __restrict Vc, int d, int len, const float* __restrict p, float* __restrict o,
                              const Reg* alpha, bool first, const Prefetch& pf, int pfo) {
    Reg acc[R][QG];
    for (int r = 0; r < R; ++r)
      for (int g = 0; g < QG; ++g) acc[r][g] = first ? V::zero() : V::mul(V::load(o + r * kTile + g * W), alpha[g]);
    for (int j = 0; j < len; ++j) {
      pf.line(pfo + j);
      Reg b[QG];
#pragma GCC unroll 8
      for (int g = 0; g < QG; ++g) b[g] = V::load(p + j * kTile + g * W);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        const Reg a = V::set1(Vc[int64_t(j) * d + r]);
#pragma GCC unroll 8
        for (int g = 0; g < QG; ++g) acc[r][g] = V::fma(a, b[g], acc[r][g]);
      }
    }
    for (int r = 0; r < R; ++r)
      for (int g = 0; g < QG; ++g) V::store(o + r * kTile + g * W, acc[r][g]);
  }

  template <int R = RS>
  static inline void s_rows(int n, const float* K, int d, const float* qt, float* s, const uint64_t* mask, int i0,
                            Reg* bmax, const Prefetch& pf, int pfo) {
    if constexpr (R > 0) {
      if (n == R) return micro_s<R>(K, d, qt, s, mask, i0, bmax, pf, pfo);
      return s_rows<R - 1>(n, K, d, qt, s, mask, i0, bmax, pf, pfo);
    }
  }
  template <int R = RO>
  static inline void pv_rows(int n, const float* Vc, int d, int len, const float* p, float* o, const Reg* alpha,
                             bool first, const Prefetch& pf, int pfo) {
    if constexpr (R > 0) {
      if (n == R) return micro_pv<R>(Vc, d, len, p, o, alpha, first, pf, pfo);
      return pv_rows<R - 1>(n, Vc, d, len, p, o, alpha, first, pf, pfo);
    }
  }

  // One key chunk (K, Vk at its first key). This chunk's values are prefetched during the S
  // product, `ahead` (the next chunk's keys, or the output and the next item's queries) during
  // the PV product.
  static void chunk(const float* K, const float* Vk, int d, int len, const uint64_t* mask, bool first,
                    const Scratch& sc, const Prefetch& ahead) {
    const Prefetch own{Vk, lines_of(int64_t(len) * d * 4)};
    const Prefetch none{};
    for (int g = 0; g < NG; ++g) {
      const int i0 = g * QG * W;
      Reg bmax[QG];
      for (int gg = 0; gg < QG; ++gg) bmax[gg] = V::set1(-INFINITY);
      const Prefetch& pf = g == 0 ? own : none;
      int j = 0, pfo = 0;
      for (; j + RS <= len; j += RS, pfo += d)
        micro_s<RS>(K + int64_t(j) * d, d, sc.qt + i0, sc.s + j * kTile + i0, mask ? mask + j : nullptr, i0, bmax, pf,
                    pfo);
      if (j < len)
        s_rows(len - j, K + int64_t(j) * d, d, sc.qt + i0, sc.s + j * kTile + i0, mask ? mask + j : nullptr, i0, bmax,
               pf, pfo);
      // Online softmax: new maxima, rescale of the running sums, P = 2^(S - max).
      Reg mu[QG], lsum[QG];
      for (int gg = 0; gg < QG; ++gg) {
        const int o = i0 + gg * W;
        const Reg mo = V::load(sc.m + o);
        const Reg mn = V::max(mo, bmax[gg]);
        mu[gg] = V::finite_or_zero(mn);
        const Reg alpha = V::exp2(V::sub(mo, mu[gg]));
        V::store(sc.m + o, mn);
        V::store(sc.alpha + o, alpha);
        V::store(sc.l + o, V::mul(V::load(sc.l + o), alpha));
        lsum[gg] = V::zero();
      }
      float* s = sc.s + i0;
      for (int jj = 0; jj < len; ++jj)
        for (int gg = 0; gg < QG; ++gg) {
          const Reg p = V::exp2(V::sub(V::load(s + jj * kTile + gg * W), mu[gg]));
          lsum[gg] = V::add(lsum[gg], p);
          V::store(s + jj * kTile + gg * W, p);
        }
      for (int gg = 0; gg < QG; ++gg) V::store(sc.l + i0 + gg * W, V::add(V::load(sc.l + i0 + gg * W), lsum[gg]));
    }
    for (int g = 0; g < NG; ++g) {
      const int i0 = g * QG * W;
      Reg alpha[QG];
      for (int gg = 0; gg < QG; ++gg) alpha[gg] = V::load(sc.alpha + i0 + gg * W);
      const Prefetch& pf = g == 0 ? ahead : none;
      int c = 0, pfo = 0;
      for (; c + RO <= d; c += RO, pfo += len)
        micro_pv<RO>(Vk + c, d, len, sc.s + i0, sc.o + c * kTile + i0, alpha, first, pf, pfo);
      if (c < d) pv_rows(d - c, Vk + c, d, len, sc.s + i0, sc.o + c * kTile + i0, alpha, first, pf, pfo);
    }
  }

  // qt[c][i] = q[i][c]·scale for i < rows (zero for the rest), c < d.
  static void pack_q(const float* q, int d, int rows, float scale, float* qt) {
    const Reg sv = V::set1(scale);
    for (int i0 = 0; i0 < kTile; i0 += W) {
      const int ni = rows - i0 < 0 ? 0 : (rows - i0 < W ? rows - i0 : W);
      for (int c0 = 0; c0 < d; c0 += W) {
        const int nc = d - c0 < W ? d - c0 : W;
        Reg r[W];
        for (int i = 0; i < W; ++i)
          r[i] = i < ni ? V::mul(V::load_n(q + int64_t(i0 + i) * d + c0, nc), sv) : V::zero();
        V::transpose(r);
        for (int c = 0; c < nc; ++c) V::store(qt + (c0 + c) * kTile + i0, r[c]);
      }
    }
  }

  // out[i][c] = o[c][i]·inv[i] for i < rows, c < d.
  static void store_out(const float* o, const float* inv, int d, int rows, float* out) {
    for (int i0 = 0; i0 < rows; i0 += W) {
      const int ni = rows - i0 < W ? rows - i0 : W;
      const Reg iv = V::load(inv + i0);
      for (int c0 = 0; c0 < d; c0 += W) {
        const int nc = d - c0 < W ? d - c0 : W;
        Reg r[W];
        for (int c = 0; c < W; ++c) r[c] = c < nc ? V::mul(V::load(o + (c0 + c) * kTile + i0), iv) : V::zero();
        V::transpose(r);
        for (int i = 0; i < ni; ++i) V::store_n(out + int64_t(i0 + i) * d + c0, r[i], nc);
      }
    }
  }

  static int run(const Problem& pb, const Item& it, const Item* next_item, const Scratch& sc) {
    const BlockMap& m = *pb.map;
    const int d = pb.head_dim;
    const int rows = item_rows(m, it);
    const int64_t q0 = item_row0(m, it);
    // The item's queries are one contiguous stretch: ask for all of it before the (strided)
    // transposing loads (usually already on its way, asked for by the previous item).
    const float* q = pb.q + q_offset(pb, it.head) + q0 * d;
    const int q_lines = lines_of(int64_t(rows) * d * 4);
    for (int i = 0; i < q_lines; ++i) __builtin_prefetch(q + 16 * int64_t(i), 0, 3);
    for (int i = 0; i < kTile; i += W) {
      V::store(sc.m + i, V::set1(-INFINITY));
      V::store(sc.l + i, V::zero());
    }
    pack_q(q, d, rows, pb.qscale, sc.qt);
    const float* kh = pb.k + kv_offset(pb, it.head);
    const float* vh = pb.v + kv_offset(pb, it.head);
    float* out = pb.out + q_offset(pb, it.head) + q0 * d;
    // During the last chunk: the output lines and the next item's queries.
    Prefetch last{out, q_lines};
    if (next_item) {
      const int64_t nq0 = item_row0(m, *next_item);
      last.b = pb.q + q_offset(pb, next_item->head) + nq0 * d;
      last.nb = lines_of(int64_t(item_rows(m, *next_item)) * d * 4);
    }
    bool first = true;
    for_each_chunk(m, it, rows, sc.mask, [&](int64_t k0, int len, const uint64_t* mask, int64_t next) {
      const Prefetch ahead =
          next < 0 ? last : Prefetch{kh + next * d, lines_of((pb.kv_len - next < kTile ? pb.kv_len - next : kTile) * d * 4)};
      chunk(kh + k0 * d, vh + k0 * d, d, len, mask, first, sc, ahead);
      first = false;
    });
    if (first)  // no chunk at all (an empty row the map should not have had): zero output
      for (int i = 0; i < d * kTile; i += W) V::store(sc.o + i, V::zero());
    write_lse(pb, it.head, q0, rows, sc.m, sc.l);
    int empty = 0;
    for (int i = 0; i < kTile; ++i) {
      const float l = sc.l[i];
      if (i < rows && row_empty(l)) ++empty;
      sc.mu[i] = row_scale(l);
    }
    store_out(sc.o, sc.mu, d, rows, out);
    return empty;
  }
};

}  // namespace
}  // namespace ditgen::attn::detail
