// AVX-512 BF16 path of the flash-attention kernel: both products run on vdpbf16ps (pairs of
// bfloat16 products summed into float32 lanes), the softmax stays in float32.
//   Sᵀ[j][i] = Σ_c K[j][c]·Q[i][c]:  pairs over channels; K in bf16 rows (kb), Q packed per tile
//                                     as qp[c/2][i][2]
//   Oᵀ[c][i] += Σ_j V[j][c]·P[j][i]: pairs over keys; V pre-interleaved (vb[j/2][c][2]), P packed
//                                     per chunk as pp[j/2][i][2]
// Row sums are taken from the rounded probabilities (a vdpbf16ps against ones) so that numerator
// and denominator see the same weights. K and V are converted per key block by the first item
// that uses it (ensure_converted). Compiled with AVX-512 BF16 flags whatever DITGEN_NATIVE
// says; only run where isa_supported(Avx512Bf16).
#include "attention/kernel/kernel_impl.h"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512BF16__) && defined(__FMA__)
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <sched.h>

#include "attention/kernel/kernel_avx512_common.h"

namespace ditgen::attn::detail {
namespace {

constexpr int T = kTile;
constexpr int RS = 6;  // key rows per S micro-kernel (6 x 4 accumulators)
constexpr int RO = 6;  // channels per PV micro-kernel

// Interleave two float vectors as bfloat16 pairs: lane i = (bf16(a[i]), bf16(b[i])).
inline __m512i pair_bf16(__m512 a, __m512 b) {
  const __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6, 21, 5,
                                       20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  return _mm512_permutexvar_epi16(idx, (__m512i)_mm512_cvtne2ps_pbh(b, a));
}

inline __m512bh as_bh(__m512i x) { return (__m512bh)x; }

template <int R>
inline void micro_s(const uint32_t* __restrict K, int dp, const uint16_t* __restrict qp, float* __restrict s,
                    const uint64_t* mask, __m512* bmax, const Prefetch& pf, int pfo) {
  __m512 acc[R][4];
  for (int r = 0; r < R; ++r)
    for (int g = 0; g < 4; ++g) acc[r][g] = _mm512_setzero_ps();
  for (int c = 0; c < dp; ++c) {
    pf.line(pfo + c);
    __m512bh b[4];
    for (int g = 0; g < 4; ++g) b[g] = as_bh(_mm512_loadu_si512(qp + c * 2 * T + g * 32));
    for (int r = 0; r < R; ++r) {
      const __m512bh a = as_bh(_mm512_set1_epi32(int(K[r * dp + c])));
      for (int g = 0; g < 4; ++g) acc[r][g] = _mm512_dpbf16_ps(acc[r][g], a, b[g]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int g = 0; g < 4; ++g) {
      __m512 x = acc[r][g];
      if (mask) x = _mm512_mask_mov_ps(_mm512_set1_ps(-INFINITY), __mmask16((mask[r] >> (16 * g)) & 0xFFFF), x);
      _mm512_storeu_ps(s + r * T + g * 16, x);
      bmax[g] = _mm512_max_ps(bmax[g], x);
    }
}

template <int R>
inline void micro_pv(const uint32_t* __restrict Vp, int d, int pairs, const uint16_t* __restrict pp, float* __restrict o,
                     const __m512* alpha, bool first, const Prefetch& pf, int pfo) {
  __m512 acc[R][4];
  for (int r = 0; r < R; ++r)
    for (int g = 0; g < 4; ++g)
      acc[r][g] = first ? _mm512_setzero_ps() : _mm512_mul_ps(_mm512_loadu_ps(o + r * T + g * 16), alpha[g]);
  for (int t = 0; t < pairs; ++t) {
    pf.line(2 * (pfo + t));
    pf.line(2 * (pfo + t) + 1);
    __m512bh b[4];
    for (int g = 0; g < 4; ++g) b[g] = as_bh(_mm512_loadu_si512(pp + t * 2 * T + g * 32));
    for (int r = 0; r < R; ++r) {
      const __m512bh a = as_bh(_mm512_set1_epi32(int(Vp[int64_t(t) * d + r])));
      for (int g = 0; g < 4; ++g) acc[r][g] = _mm512_dpbf16_ps(acc[r][g], a, b[g]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int g = 0; g < 4; ++g) _mm512_storeu_ps(o + r * T + g * 16, acc[r][g]);
}

template <int R = RS>
inline void s_rows(int n, const uint32_t* K, int dp, const uint16_t* qp, float* s, const uint64_t* mask, __m512* bmax,
                   const Prefetch& pf, int pfo) {
  if constexpr (R > 0) {
    if (n == R) return micro_s<R>(K, dp, qp, s, mask, bmax, pf, pfo);
    return s_rows<R - 1>(n, K, dp, qp, s, mask, bmax, pf, pfo);
  }
}
template <int R = RO>
inline void pv_rows(int n, const uint32_t* Vp, int d, int pairs, const uint16_t* pp, float* o, const __m512* alpha,
                    bool first, const Prefetch& pf, int pfo) {
  if constexpr (R > 0) {
    if (n == R) return micro_pv<R>(Vp, d, pairs, pp, o, alpha, first, pf, pfo);
    return pv_rows<R - 1>(n, Vp, d, pairs, pp, o, alpha, first, pf, pfo);
  }
}

// K rows k0 .. k0+len-1 (kb: dp pairs a row), V pairs from k0/2 (vb: d pairs a row).
// This chunk's values are prefetched during the S product, `ahead` (the next chunk's keys, or the
// output and the next item's queries) during the PV product.
void chunk(const uint32_t* K, const uint32_t* Vp, int d, int dp, int len, const uint64_t* mask, const uint16_t* qp,
           bool first, const Scratch& sc, const Prefetch& ahead) {
  const Prefetch own{Vp, lines_of(int64_t((len + 1) / 2) * d * 4)};
  __m512 bmax[4];
  for (int g = 0; g < 4; ++g) bmax[g] = _mm512_set1_ps(-INFINITY);
  int j = 0, pfo = 0;
  for (; j + RS <= len; j += RS, pfo += dp)
    micro_s<RS>(K + int64_t(j) * dp, dp, qp, sc.s + j * T, mask ? mask + j : nullptr, bmax, own, pfo);
  if (j < len) s_rows(len - j, K + int64_t(j) * dp, dp, qp, sc.s + j * T, mask ? mask + j : nullptr, bmax, own, pfo);
  __m512 mu[4], lsum[4], alpha[4];
  for (int g = 0; g < 4; ++g) {
    const __m512 mo = _mm512_loadu_ps(sc.m + 16 * g);
    const __m512 mn = _mm512_max_ps(mo, bmax[g]);
    mu[g] = _mm512_mask_mov_ps(mn, _mm512_cmp_ps_mask(mn, _mm512_set1_ps(-INFINITY), _CMP_EQ_OQ), _mm512_setzero_ps());
    alpha[g] = avx512::exp2(_mm512_sub_ps(mo, mu[g]));
    _mm512_storeu_ps(sc.m + 16 * g, mn);
    lsum[g] = _mm512_setzero_ps();
  }
  // P in place as bf16 pairs: packed row t (256 bytes) never overtakes S rows 2t, 2t+1.
  const __m512bh ones = as_bh(_mm512_set1_epi16(0x3F80));
  uint16_t* pp = reinterpret_cast<uint16_t*>(sc.s);
  const int pairs = (len + 1) / 2;
  for (int t = 0; t < pairs; ++t) {
    __m512i packed[4];
    for (int g = 0; g < 4; ++g) {
      const __m512 p0 = avx512::exp2(_mm512_sub_ps(_mm512_loadu_ps(sc.s + 2 * t * T + 16 * g), mu[g]));
      const __m512 p1 = 2 * t + 1 < len ? avx512::exp2(_mm512_sub_ps(_mm512_loadu_ps(sc.s + (2 * t + 1) * T + 16 * g), mu[g]))
                                        : _mm512_setzero_ps();
      packed[g] = pair_bf16(p0, p1);
      lsum[g] = _mm512_dpbf16_ps(lsum[g], as_bh(packed[g]), ones);
    }
    for (int g = 0; g < 4; ++g) _mm512_storeu_si512(pp + t * 2 * T + 32 * g, packed[g]);
  }
  for (int g = 0; g < 4; ++g)
    _mm512_storeu_ps(sc.l + 16 * g, _mm512_add_ps(_mm512_mul_ps(_mm512_loadu_ps(sc.l + 16 * g), alpha[g]), lsum[g]));
  int c = 0, kpfo = 0;
  for (; c + RO <= d; c += RO, kpfo += pairs) micro_pv<RO>(Vp + c, d, pairs, pp, sc.o + c * T, alpha, first, ahead, kpfo);
  if (c < d) pv_rows(d - c, Vp + c, d, pairs, pp, sc.o + c * T, alpha, first, ahead, kpfo);
}

}  // namespace

bool built_avx512bf16() { return true; }

namespace {

// Converts keys [r0, r1) of head h into the bf16 layouts (r0 even): K rows, V row pairs.
void convert_rows(const Problem& pb, int h, int64_t r0, int64_t r1) {
  const int d = pb.head_dim;
  const int d2 = (d + 1) & ~1;
  const int64_t n = pb.kv_len, n2 = (n + 1) & ~int64_t(1);
  uint16_t* kb = const_cast<uint16_t*>(pb.kb) + int64_t(h) * n * d2;
  uint16_t* vb = const_cast<uint16_t*>(pb.vb) + int64_t(h) * n2 * d;
  const float* k = pb.k + int64_t(h) * n * d;
  const float* v = pb.v + int64_t(h) * n * d;
  for (int64_t r = r0; r < r1; ++r) {
    const float* src = k + r * d;
    uint16_t* dst = kb + r * d2;
    for (int c0 = 0; c0 < d2; c0 += 32) {
      const int m = d - c0;
      const __m512 a = _mm512_maskz_loadu_ps(__mmask16(m >= 16 ? 0xFFFF : (1u << m) - 1), src + c0);
      const __m512 b = m > 16 ? _mm512_maskz_loadu_ps(__mmask16(m >= 32 ? 0xFFFF : (1u << (m - 16)) - 1), src + c0 + 16)
                              : _mm512_setzero_ps();
      const int w = d2 - c0 >= 32 ? 32 : d2 - c0;
      _mm512_mask_storeu_epi16(dst + c0, __mmask32(w >= 32 ? 0xFFFFFFFFu : (1u << w) - 1),
                               (__m512i)_mm512_cvtne2ps_pbh(b, a));
    }
  }
  for (int64_t t = r0 / 2; t < (r1 + 1) / 2; ++t) {
    const float* v0 = v + 2 * t * d;
    const bool has1 = 2 * t + 1 < n;
    uint16_t* dst = vb + t * int64_t(d) * 2;
    for (int c0 = 0; c0 < d; c0 += 16) {
      const int m = d - c0 >= 16 ? 16 : d - c0;
      const __mmask16 mk = __mmask16(m >= 16 ? 0xFFFF : (1u << m) - 1);
      const __m512 a = _mm512_maskz_loadu_ps(mk, v0 + c0);
      const __m512 b = has1 ? _mm512_maskz_loadu_ps(mk, v0 + d + c0) : _mm512_setzero_ps();
      _mm512_mask_storeu_epi16(dst + 2 * c0, __mmask32(m >= 16 ? 0xFFFFFFFFu : (1u << (2 * m)) - 1), pair_bf16(a, b));
    }
  }
}

// Key block kb of head h in bf16, converted by the first item that needs it (the others wait
// the microsecond it takes): only blocks some map row uses are converted, each once, by the
// thread that reads the float32 keys and values anyway.
void ensure_converted(const Problem& pb, int h, int kb) {
  std::atomic<uint8_t>& st = pb.kv_state[int64_t(h) * pb.map->num_kv_blocks() + kb];
  uint8_t s = st.load(std::memory_order_acquire);
  if (s == 2) return;
  if (s == 0 && st.compare_exchange_strong(s, 1, std::memory_order_acq_rel)) {
    const int64_t r0 = int64_t(kb) * pb.map->block;
    convert_rows(pb, h, r0, std::min<int64_t>(pb.kv_len, r0 + pb.map->block));
    st.store(2, std::memory_order_release);
    return;
  }
  // Spin briefly, then yield: on an oversubscribed machine the converting thread may be off
  // its core.
  for (int spins = 0; st.load(std::memory_order_acquire) != 2; ++spins) {
    if (spins < 4096)
      _mm_pause();
    else
      sched_yield();
  }
}

}  // namespace

int tile_avx512bf16(const Problem& pb, const Item& it, const Item* next_item, const Scratch& sc) {
  const BlockMap& map = *pb.map;
  const int d = pb.head_dim;
  const int dp = (d + 1) / 2;  // channel pairs
  const int rows = item_rows(map, it);
  const int64_t q0 = int64_t(it.qb) * map.block + int64_t(it.sub) * T;
  const float* q = pb.q + q_offset(pb, it.head) + q0 * d;
  // Pack the scaled queries as channel pairs, qp[c/2][i][2] (in sc.qt): 16×16 transposes give
  // channel rows of 16 queries, paired and rounded to bf16 on the way out. The item's queries
  // are one contiguous stretch, usually not in cache: ask for all of it first.
  const int q_lines = lines_of(int64_t(rows) * d * 4);
  for (int i = 0; i < q_lines; ++i) __builtin_prefetch(q + 16 * int64_t(i), 0, 3);
  uint16_t* qpw = reinterpret_cast<uint16_t*>(sc.qt);
  {
    const __m512 sv = _mm512_set1_ps(pb.qscale);
    for (int i0 = 0; i0 < T; i0 += 16) {
      const int ni = rows - i0 < 0 ? 0 : (rows - i0 < 16 ? rows - i0 : 16);
      for (int c0 = 0; c0 < 2 * dp; c0 += 16) {
        const int nc = d - c0 < 16 ? d - c0 : 16;
        __m512 r[16];
        for (int i = 0; i < 16; ++i)
          r[i] = i < ni ? _mm512_mul_ps(_mm512_maskz_loadu_ps(__mmask16((1u << nc) - 1), q + int64_t(i0 + i) * d + c0), sv)
                        : _mm512_setzero_ps();
        avx512::transpose16(r);
        for (int c = 0; c < 16 && c0 + c < 2 * dp; c += 2)
          _mm512_storeu_si512(qpw + ((c0 + c) / 2) * 2 * T + 2 * i0, pair_bf16(r[c], r[c + 1]));
      }
    }
  }
  for (int i = 0; i < T; i += 16) {
    _mm512_storeu_ps(sc.m + i, _mm512_set1_ps(-INFINITY));
    _mm512_storeu_ps(sc.l + i, _mm512_setzero_ps());
  }
  const int d2 = 2 * dp;
  const int64_t n2 = (pb.kv_len + 1) & ~int64_t(1);
  const uint32_t* kh = reinterpret_cast<const uint32_t*>(pb.kb + int64_t(it.head) * pb.kv_len * d2);
  const uint32_t* vh = reinterpret_cast<const uint32_t*>(pb.vb + int64_t(it.head) * n2 * d);
  const uint16_t* qp = reinterpret_cast<const uint16_t*>(sc.qt);
  float* out = pb.out + q_offset(pb, it.head) + q0 * d;
  // During the last chunk: the output lines and the next item's queries.
  Prefetch last{out, q_lines};
  if (next_item) {
    last.b = pb.q + q_offset(pb, next_item->head) + item_row0(map, *next_item) * d;
    last.nb = lines_of(int64_t(item_rows(map, *next_item)) * d * 4);
  }
  bool first = true;
  const int nbk = map.num_kv_blocks();
  for_each_chunk(map, it, rows, sc.mask, [&](int64_t k0, int len, const uint64_t* mask, int64_t next) {
    ensure_converted(pb, it.head, int(k0 / map.block));
    Prefetch ahead = last;
    if (next >= 0) {
      // The next chunk's bf16 keys, or its float32 keys and values while its block still
      // awaits conversion.
      const int64_t nlen = pb.kv_len - next < T ? pb.kv_len - next : T;
      const int64_t nkb = next / map.block;
      if (pb.kv_state[int64_t(it.head) * nbk + nkb].load(std::memory_order_relaxed) == 2) {
        ahead = Prefetch{kh + next * dp, lines_of(nlen * d2 * 2)};
      } else {
        const int64_t off = kv_offset(pb, it.head) + next * d;
        ahead = Prefetch{pb.k + off, lines_of(nlen * d * 4), pb.v + off, lines_of(nlen * d * 4)};
      }
    }
    chunk(kh + k0 * dp, vh + (k0 / 2) * d, d, dp, len, mask, qp, first, sc, ahead);
    first = false;
  });
  if (first)  // no chunk at all (an empty row the map should not have had): zero output
    for (int i = 0; i < d * T; i += 16) _mm512_storeu_ps(sc.o + i, _mm512_setzero_ps());
  write_lse(pb, it.head, q0, rows, sc.m, sc.l);
  int empty = 0;
  for (int i = 0; i < T; ++i) {
    const float l = sc.l[i];
    if (i < rows && row_empty(l)) ++empty;
    sc.mu[i] = row_scale(l);
  }
  for (int i0 = 0; i0 < rows; i0 += 16) {
    const int ni = rows - i0 < 16 ? rows - i0 : 16;
    const __m512 iv = _mm512_loadu_ps(sc.mu + i0);
    for (int c0 = 0; c0 < d; c0 += 16) {
      const int nc = d - c0 < 16 ? d - c0 : 16;
      __m512 r[16];
      for (int c = 0; c < 16; ++c) r[c] = c < nc ? _mm512_mul_ps(_mm512_loadu_ps(sc.o + (c0 + c) * T + i0), iv) : _mm512_setzero_ps();
      avx512::transpose16(r);
      for (int i = 0; i < ni; ++i) _mm512_mask_storeu_ps(out + int64_t(i0 + i) * d + c0, __mmask16((1u << nc) - 1), r[i]);
    }
  }
  return empty;
}

}  // namespace ditgen::attn::detail

#else

#include <cstdlib>

namespace ditgen::attn::detail {
bool built_avx512bf16() { return false; }
int tile_avx512bf16(const Problem&, const Item&, const Item*, const Scratch&) { std::abort(); }
}  // namespace ditgen::attn::detail

#endif
