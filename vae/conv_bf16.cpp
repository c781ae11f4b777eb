// The bf16 overload of conv_frame (vae/conv.h). Wide outputs: each tile of output pixels
// gathers its taps' bf16 runs into rows of pairs, the layout the bf16 GEMM reads without
// converting. Narrow outputs (the RGB head): a direct kernel, one pixel's taps against each
// output's weights, 32 bf16 products a vdpbf16ps. Compiled with AVX-512 BF16 whatever
// DITGEN_NATIVE says (vae/CMakeLists.txt); packed weights exist only where the CPU has it.
#include <algorithm>
#include <cassert>
#include <cstring>
#include <vector>

#include "vae/conv.h"
#include "vae/conv_dnnl.h"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512BF16__)
#include <immintrin.h>
#endif

namespace ditgen::vae {
namespace {

// Input pixel of output (oy, ox) at tap (dy, dx), or -1 where it falls in the padding.
inline int64_t source(const ConvGeometry& g, int oy, int ox, int dy, int dx) {
  const int y = oy * g.stride + dy - g.pad_top, x = ox * g.stride + dx - g.pad_left;
  if (y < 0 || y >= g.in_h * g.upsample || x < 0 || x >= g.in_w * g.upsample) return -1;
  return int64_t(y / g.upsample) * g.in_w + x / g.upsample;
}

// Rows [p0, p0 + rows) of the gathered matrix as bf16 pairs, `pairs` a row (K values, then a
// zero where K is odd). Written bytewise: the GEMM reads the tile as 32-bit pairs.
void gather(const ConvWeights& w, const uint16_t* const* in, const ConvGeometry& g, int64_t p0, int64_t rows,
            int64_t pairs, uint32_t* col) {
  const size_t run = size_t(w.cin) * sizeof(uint16_t);
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t p = p0 + r;
    const int oy = int(p / g.out_w), ox = int(p % g.out_w);
    unsigned char* dst = reinterpret_cast<unsigned char*>(col + r * pairs);
    for (int dt = 0; dt < w.kt; ++dt)
      for (int dy = 0; dy < w.kh; ++dy)
        for (int dx = 0; dx < w.kw; ++dx, dst += run) {
          const int64_t s = in[dt] ? source(g, oy, ox, dy, dx) : -1;
          if (s < 0)
            std::memset(dst, 0, run);
          else
            std::memcpy(dst, in[dt] + s * w.cin, run);
        }
    if (w.k() % 2) std::memset(dst, 0, sizeof(uint16_t));
  }
}

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512BF16__)
void narrow(const ConvWeights& w, const uint16_t* const* in, const ConvGeometry& g, float* out) {
  std::vector<uint16_t> W(size_t(w.cout) * w.k());  // (Cout, K) bf16
  w.packed.unpack_bits(W.data());
  const int64_t K = w.k();
#pragma omp parallel for schedule(dynamic, 1)
  for (int oy = 0; oy < g.out_h; ++oy)
    for (int ox = 0; ox < g.out_w; ++ox) {
      __m512 acc[kNarrowOutputs];
      for (int o = 0; o < w.cout; ++o) acc[o] = _mm512_setzero_ps();
      int tap = 0;
      for (int dt = 0; dt < w.kt; ++dt)
        for (int dy = 0; dy < w.kh; ++dy)
          for (int dx = 0; dx < w.kw; ++dx, ++tap) {
            const int64_t s = in[dt] ? source(g, oy, ox, dy, dx) : -1;
            if (s < 0) continue;
            const uint16_t* x = in[dt] + s * w.cin;
            for (int i = 0; i < w.cin; i += 32) {
              const __mmask32 m = w.cin - i >= 32 ? ~__mmask32(0) : (__mmask32(1) << (w.cin - i)) - 1;
              const __m512bh xv = (__m512bh)_mm512_maskz_loadu_epi16(m, x + i);
              for (int o = 0; o < w.cout; ++o) {
                const __m512bh wv = (__m512bh)_mm512_maskz_loadu_epi16(m, W.data() + o * K + tap * w.cin + i);
                acc[o] = _mm512_dpbf16_ps(acc[o], xv, wv);
              }
            }
          }
      float* y = out + (int64_t(oy) * g.out_w + ox) * w.cout;
      for (int o = 0; o < w.cout; ++o) y[o] = _mm512_reduce_add_ps(acc[o]) + w.bias[size_t(o)];
    }
}
#else
void narrow(const ConvWeights&, const uint16_t* const*, const ConvGeometry&, float*) {
  assert(false && "packed weights without AVX-512 BF16");
}
#endif

void conv_frame_tiles(const ConvWeights& w, const uint16_t* const* in, const ConvGeometry& g, float* out);
}  // namespace

void conv_frame(const ConvWeights& w, const uint16_t* const* in, const ConvGeometry& g, float* out) {
  const double start = detail::now_seconds();
  if (!(conv_backend() == ConvBackend::onednn && dnnl_conv_frame(w, in, g, out))) conv_frame_tiles(w, in, g, out);
  detail::count_conv(2.0 * double(g.out_h) * g.out_w * double(w.k()) * w.cout, start);
}

namespace {
void conv_frame_tiles(const ConvWeights& w, const uint16_t* const* in, const ConvGeometry& g, float* out) {
  assert(w.is_bf16());
  if (w.cout <= kNarrowOutputs) return narrow(w, in, g, out);
  const int64_t pixels = int64_t(g.out_h) * g.out_w, pairs = w.packed.pairs();
  // A gathered tile of about 4 MB (8 MB of float32 in the float overload: the same pixels).
  const int64_t tile = std::clamp<int64_t>((int64_t(4) << 20) / (pairs * 4), 64, 8192);
  std::vector<uint32_t> col(size_t(std::min(tile, pixels) * pairs));
  for (int64_t p0 = 0; p0 < pixels; p0 += tile) {
    const int64_t rows = std::min(tile, pixels - p0);
    gather(w, in, g, p0, rows, pairs, col.data());
    float* y = out + p0 * w.cout;
    gemm::matmul_pairs_packed(col.data(), rows, w.packed, y);
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; ++r)
      for (int o = 0; o < w.cout; ++o) y[r * w.cout + o] += w.bias[size_t(o)];
  }
}

}  // namespace

}  // namespace ditgen::vae
