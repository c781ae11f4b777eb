// AVX-512 float32 path of the flash-attention kernel. Compiled with AVX-512 flags whatever
// DITGEN_NATIVE says (attention/CMakeLists.txt); only run where isa_supported(Avx512).
#include "attention/kernel/kernel_impl.h"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512DQ__) && defined(__FMA__)
#include <immintrin.h>

#include "attention/kernel/kernel_avx512_common.h"
#include "attention/kernel/kernel_tile.h"

namespace ditgen::attn::detail {
namespace {

struct V512 {
  using Reg = __m512;
  static constexpr int W = 16;
  static constexpr int QG = 4;  // all 64 queries: 6 x 4 accumulators, 4 loads + 6 broadcasts per step
  static constexpr int RS = 6;
  static constexpr int RO = 6;
  static Reg zero() { return _mm512_setzero_ps(); }
  static Reg load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, Reg x) { _mm512_storeu_ps(p, x); }
  static Reg load_n(const float* p, int n) { return _mm512_maskz_loadu_ps(__mmask16((1u << n) - 1), p); }
  static void store_n(float* p, Reg x, int n) { _mm512_mask_storeu_ps(p, __mmask16((1u << n) - 1), x); }
  static Reg set1(float x) { return _mm512_set1_ps(x); }
  static Reg fma(Reg a, Reg b, Reg c) { return _mm512_fmadd_ps(a, b, c); }
  static Reg mul(Reg a, Reg b) { return _mm512_mul_ps(a, b); }
  static Reg add(Reg a, Reg b) { return _mm512_add_ps(a, b); }
  static Reg sub(Reg a, Reg b) { return _mm512_sub_ps(a, b); }
  static Reg max(Reg a, Reg b) { return _mm512_max_ps(a, b); }
  static Reg exp2(Reg x) { return avx512::exp2(x); }
  static Reg keep_or_neg_inf(Reg x, uint64_t bits) {
    return _mm512_mask_mov_ps(_mm512_set1_ps(-INFINITY), __mmask16(bits & 0xFFFF), x);
  }
  static Reg finite_or_zero(Reg m) {
    return _mm512_mask_mov_ps(m, _mm512_cmp_ps_mask(m, _mm512_set1_ps(-INFINITY), _CMP_EQ_OQ), _mm512_setzero_ps());
  }
  static void transpose(Reg* r) { avx512::transpose16(r); }
};

}  // namespace

bool built_avx512() { return true; }
int tile_avx512(const Problem& pb, const Item& it, const Item* next, const Scratch& sc) {
  return FlashTile<V512>::run(pb, it, next, sc);
}

}  // namespace ditgen::attn::detail

#else

#include <cstdlib>

namespace ditgen::attn::detail {
bool built_avx512() { return false; }
int tile_avx512(const Problem&, const Item&, const Item*, const Scratch&) { std::abort(); }
}  // namespace ditgen::attn::detail

#endif
