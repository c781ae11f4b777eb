// AVX-512 BF16 kernel of dit/gemm_bf16.h. Compiled with its own instruction set whatever
// DITGEN_NATIVE says (dit/CMakeLists.txt); a compiler without it builds the stub at the end.
//
// W is packed (per call, or once at load as PackedBF16) into panels of NR×16 outputs: wp[panel][k pair][NR×16] as 32-bit
// (W[n][2p], W[n][2p+1]) bf16 pairs, zero past `out` and past `in`. Each thread converts a block
// of rows of X to bf16 pairs (row-major, zero-padded odd `in`; the block stays in L2) and, panel by
// panel, runs the micro-kernel down the block MR rows at a time, KC pairs of K per pass (the
// panel's KC slice stays in L2, the block's Y columns of the panel too between passes): MR×NR
// accumulators, one broadcast X pair against NR vectors of W pairs per vdpbf16ps.
#include "dit/gemm_bf16.h"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512BF16__) && defined(__FMA__)
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <new>

namespace ditgen::gemm {
namespace {

// 24 accumulators, 4 W vectors, 1 broadcast. Measured on Zen 5 against 8×3, 12×2 and 14×2: as fast
// on most shapes, about 10% faster at out = 256, which 64-output panels divide with no padding.
constexpr int MR = 6, NR = 4, NW = NR * 16;
static_assert(NW == kPanelOutputs, "PackedBF16's layout is the kernel's panel");
// Pairs of K per pass: a panel slice of up to 512 KiB (L2). Passes of 128 to 256 pairs measured
// a few percent slower than one pass up to in = 3072; the cap only matters beyond in = 4096.
constexpr int64_t KC = 2048;
constexpr int64_t A_BYTES = 256 << 10;  // X block per thread (bf16), sized for L2

struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};
// 64-byte aligned so that every W vector is one cache line.
std::unique_ptr<uint32_t[], FreeDeleter> alloc_pairs(int64_t n) {
  void* p = std::aligned_alloc(64, (size_t(n) * 4 + 63) / 64 * 64);
  if (p == nullptr) throw std::bad_alloc();
  return std::unique_ptr<uint32_t[], FreeDeleter>(static_cast<uint32_t*>(p));
}

// The first n lanes (0 to 16).
inline __mmask16 lanes(int64_t n) {
  return n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << std::max<int64_t>(n, 0)) - 1);
}

// Lane i = (bf16(a[i]), bf16(b[i])).
inline __m512i pair_bf16(__m512 a, __m512 b) {
  const __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6,
                                       21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  return _mm512_permutexvar_epi16(idx, (__m512i)_mm512_cvtne2ps_pbh(b, a));
}

// Panel j, pairs [0, kp): gathers W[n][2p] and W[n][2p+1] of its 16-output groups (32-bit
// offsets up to 15·in: in < 2^27).
void pack_w_panel(const float* W, int64_t in, int64_t out, int64_t kp, int64_t j, uint32_t* dst) {
  const __m512i stride = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                            _mm512_set1_epi32(int(in)));
  for (int g = 0; g < NR; ++g) {
    const int64_t n0 = (j * NR + g) * 16;
    const __mmask16 m = lanes(out - n0);
    const float* base = W + std::min(n0, out - 1) * in;  // stays inside W when the group is all padding
    for (int64_t p = 0; p < kp; ++p) {
      const __m512 e = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, stride, base + 2 * p, 4);
      const __m512 o = 2 * p + 1 < in ? _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, stride, base + 2 * p + 1, 4)
                                      : _mm512_setzero_ps();
      _mm512_store_si512(dst + p * NW + g * 16, pair_bf16(e, o));
    }
  }
}

// Rows of X to bf16 pairs, `kp` pairs a row; the odd last pair gets a zero.
void pack_x(const float* x, int64_t rows, int64_t in, int64_t kp, uint32_t* dst) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* src = x + r * in;
    for (int64_t i = 0; i < in; i += 32) {
      const __m512 lo = _mm512_maskz_loadu_ps(lanes(in - i), src + i);
      const __m512 hi = _mm512_maskz_loadu_ps(lanes(in - i - 16), src + i + 16);
      _mm512_mask_storeu_epi32(dst + r * kp + i / 2, lanes(kp - i / 2), (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
    }
  }
}

// y[R rows][G×16 columns, masked by m] (+)= a[R rows][kc pairs] · b[kc pairs][G×16 of NW].
template <int R, int G>
inline void micro(const uint32_t* __restrict a, int64_t lda, const uint32_t* __restrict b, int64_t kc, float* y,
                  int64_t ldy, const __mmask16* m, bool first) {
  __m512 acc[R][G];
  for (int r = 0; r < R; ++r)
    for (int g = 0; g < G; ++g)
      acc[r][g] = first ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(m[g], y + r * ldy + g * 16);
  for (int64_t p = 0; p < kc; ++p) {
    __m512bh w[G];
    for (int g = 0; g < G; ++g) w[g] = (__m512bh)_mm512_load_si512(b + p * NW + g * 16);
    for (int r = 0; r < R; ++r) {
      const __m512bh xa = (__m512bh)_mm512_set1_epi32(int(a[r * lda + p]));
      for (int g = 0; g < G; ++g) acc[r][g] = _mm512_dpbf16_ps(acc[r][g], xa, w[g]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int g = 0; g < G; ++g) _mm512_mask_storeu_ps(y + r * ldy + g * 16, m[g], acc[r][g]);
}

// The ragged last rows of a block: R = n < MR.
template <int G, int R = MR - 1>
inline void micro_tail(int n, const uint32_t* a, int64_t lda, const uint32_t* b, int64_t kc, float* y, int64_t ldy,
                       const __mmask16* m, bool first) {
  if constexpr (R > 0) {
    if (n == R) return micro<R, G>(a, lda, b, kc, y, ldy, m, first);
    micro_tail<G, R - 1>(n, a, lda, b, kc, y, ldy, m, first);
  }
}

// One pass of a panel with G live 16-output groups (fewer than NR only in the last panel, so
// that a narrow `out` does not pay for padding) down `rows` rows of the block.
template <int G>
void panel_pass(const uint32_t* a, int64_t lda, int64_t rows, const uint32_t* b, int64_t kc, float* y, int64_t ldy,
                const __mmask16* m, bool first) {
  int64_t i = 0;
  for (; i + MR <= rows; i += MR) micro<MR, G>(a + i * lda, lda, b, kc, y + i * ldy, ldy, m, first);
  if (i < rows) micro_tail<G>(int(rows - i), a + i * lda, lda, b, kc, y + i * ldy, ldy, m, first);
}
using PanelPass = decltype(&panel_pass<NR>);
template <int G = NR>
PanelPass panel_pass_for(int groups) {
  if constexpr (G > 1)
    if (groups < G) return panel_pass_for<G - 1>(groups);
  return panel_pass<G>;
}

}  // namespace

bool bf16_gemm_available() {
  // Asked before every bf16 product: the CPU does not change, so ask it once.
  static const bool ok = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bf16");
  return ok;
}

namespace {
// Y = X · Wᵀ with W already in panels (wp: `panels` panels of kp pairs × NW); X as float32
// (x, converted block by block) or as bf16 pairs (xpairs, rows of kp).
void run_packed(const float* x, const uint32_t* xpairs, int64_t rows, int64_t in, int64_t out, const uint32_t* wp,
                float* y) {
  const int64_t kp = (in + 1) / 2, panels = (out + NW - 1) / NW;
  // As the OpenBLAS path: at least 64 rows a thread.
  const int threads = int(std::min<int64_t>(omp_get_max_threads(), std::max<int64_t>(1, rows / 64)));
  // Row blocks that fit A_BYTES, at least 4 a thread: handed out dynamically, so that a thread
  // slowed by other work on a shared machine does not hold up the call (each output is computed
  // the same way whichever thread takes its block).
  const int64_t block_rows = std::min(A_BYTES / (kp * 4), (rows + 4 * threads - 1) / (4 * threads));
  const int64_t mc = std::max<int64_t>(MR, block_rows / MR * MR);
  // Allocated here: an exception cannot leave the parallel region.
  const auto xp_all = alloc_pairs(xpairs ? 1 : threads * mc * kp);
#pragma omp parallel num_threads(threads)
  {
    uint32_t* const buf = xp_all.get() + (xpairs ? 0 : omp_get_thread_num() * mc * kp);
#pragma omp for schedule(dynamic, 1)
    for (int64_t m0 = 0; m0 < rows; m0 += mc) {
      const int64_t mr = std::min(mc, rows - m0);
      const uint32_t* xp = buf;
      if (xpairs)
        xp = xpairs + m0 * kp;
      else
        pack_x(x + m0 * in, mr, in, kp, buf);
      for (int64_t j = 0; j < panels; ++j) {
        __mmask16 m[NR];
        for (int g = 0; g < NR; ++g) m[g] = lanes(out - j * NW - g * 16);
        const PanelPass pass = panel_pass_for(int(std::min<int64_t>(NR, (out - j * NW + 15) / 16)));
        for (int64_t k0 = 0; k0 < kp; k0 += KC)
          pass(xp + k0, kp, mr, wp + (j * kp + k0) * NW, std::min(KC, kp - k0), y + m0 * out + j * NW, out, m,
               k0 == 0);
      }
    }
  }
}
}  // namespace

void matmul_nt_bf16(const float* x, int64_t rows, int64_t in, const float* W, int64_t out, float* y) {
  const int64_t kp = (in + 1) / 2, panels = (out + NW - 1) / NW;
  const auto wp = alloc_pairs(panels * kp * NW);
#pragma omp parallel for schedule(static)
  for (int64_t j = 0; j < panels; ++j) pack_w_panel(W, in, out, kp, j, wp.get() + j * kp * NW);
  run_packed(x, nullptr, rows, in, out, wp.get(), y);
}

void matmul_nt_packed(const float* x, int64_t rows, const PackedBF16& W, float* y) {
  run_packed(x, nullptr, rows, W.in(), W.out(), W.data(), y);
}

void matmul_pairs_packed(const uint32_t* x, int64_t rows, const PackedBF16& W, float* y) {
  run_packed(nullptr, x, rows, W.in(), W.out(), W.data(), y);
}

void to_bf16(const float* x, int64_t n, uint16_t* out) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = lanes(n - i);
    _mm256_mask_storeu_epi16(out + i, m, (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, x + i)));
  }
}

}  // namespace ditgen::gemm

#else  // no AVX-512 BF16 in this compiler: a stub that reports itself absent.
#include <stdexcept>

namespace ditgen::gemm {
bool bf16_gemm_available() { return false; }
void matmul_nt_bf16(const float*, int64_t, int64_t, const float*, int64_t, float*) {
  throw std::logic_error("matmul_nt_bf16: built without AVX-512 BF16");
}
void matmul_nt_packed(const float*, int64_t, const PackedBF16&, float*) {
  throw std::logic_error("matmul_nt_packed: built without AVX-512 BF16");
}
void matmul_pairs_packed(const uint32_t*, int64_t, const PackedBF16&, float*) {
  throw std::logic_error("matmul_pairs_packed: built without AVX-512 BF16");
}
void to_bf16(const float*, int64_t, uint16_t*) { throw std::logic_error("to_bf16: built without AVX-512 BF16"); }
}  // namespace ditgen::gemm
#endif
