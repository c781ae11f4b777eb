#include "vae/conv.h"

#include <algorithm>
#include <cassert>
#include <atomic>
#include <chrono>
#include <cstring>
#include <stdexcept>

#include "dit/gemm.h"
#include "vae/conv_dnnl.h"

namespace ditgen::vae {

ConvWeights ConvWeights::from_torch(const float* w, const float* bias, int cout, int cin, int kt, int kh, int kw) {
  ConvWeights c;
  c.cout = cout, c.cin = cin, c.kt = kt, c.kh = kh, c.kw = kw;
  const int taps = kt * kh * kw;
  c.w.resize(size_t(cout) * taps * cin);
  for (int o = 0; o < cout; ++o)
    for (int i = 0; i < cin; ++i)
      for (int t = 0; t < taps; ++t) c.w[(size_t(o) * taps + t) * cin + i] = w[(size_t(o) * cin + i) * taps + t];
  c.bias.assign(bias, bias + cout);
  return c;
}

void ConvWeights::pack_bf16() {
  packed = gemm::PackedBF16::pack(w.data(), k(), cout);
  dnnl.reset();
  std::vector<float>().swap(w);
}

int64_t ConvWeights::bytes() const {
  return int64_t(w.size() + bias.size()) * 4 + (packed.empty() ? 0 : packed.bytes());
}

ConvGeometry ConvGeometry::same(int in_h, int in_w, int k, int upsample) {
  ConvGeometry g;
  g.in_h = in_h, g.in_w = in_w, g.upsample = upsample;
  g.pad_top = g.pad_left = (k - 1) / 2;
  g.out_h = in_h * upsample, g.out_w = in_w * upsample;
  return g;
}

ConvGeometry ConvGeometry::down2(int in_h, int in_w, int k) {
  ConvGeometry g;
  g.in_h = in_h, g.in_w = in_w, g.stride = 2;
  g.out_h = (in_h + 1 - k) / 2 + 1, g.out_w = (in_w + 1 - k) / 2 + 1;
  return g;
}

namespace {

// Rows [p0, p0 + rows) of the gathered matrix (rows x K).
void gather(const ConvWeights& w, const float* const* in, const ConvGeometry& g, int64_t p0, int64_t rows,
            float* col) {
  const int64_t K = w.k();
  const int uh = g.in_h * g.upsample, uw = g.in_w * g.upsample;
  const size_t run = size_t(w.cin) * sizeof(float);
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t p = p0 + r;
    const int oy = int(p / g.out_w), ox = int(p % g.out_w);
    float* dst = col + r * K;
    for (int dt = 0; dt < w.kt; ++dt)
      for (int dy = 0; dy < w.kh; ++dy) {
        const int y = oy * g.stride + dy - g.pad_top;
        for (int dx = 0; dx < w.kw; ++dx, dst += w.cin) {
          const int x = ox * g.stride + dx - g.pad_left;
          if (!in[dt] || y < 0 || y >= uh || x < 0 || x >= uw) {
            std::memset(dst, 0, run);
          } else {
            const int64_t src = (int64_t(y / g.upsample) * g.in_w + x / g.upsample) * w.cin;
            std::memcpy(dst, in[dt] + src, run);
          }
        }
      }
  }
}

void add_bias(const ConvWeights& w, int64_t rows, float* y) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r)
    for (int o = 0; o < w.cout; ++o) y[r * w.cout + o] += w.bias[size_t(o)];
}

void gemm_rows(const ConvWeights& w, const float* x, int64_t rows, float* y) {
  if (w.is_bf16())
    gemm::matmul_nt_packed(x, rows, w.packed, y);
  else
    gemm::matmul_nt(gemm::active_backend(), x, rows, w.k(), w.w.data(), w.cout, y);
  add_bias(w, rows, y);
}

}  // namespace

namespace {
void conv_frame_tiles(const ConvWeights& w, const float* const* in, const ConvGeometry& g, float* out);
std::atomic<int64_t> g_flops{0}, g_nanoseconds{0};
}  // namespace

double detail::now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void detail::count_conv(double flops, double start) {
  g_flops += int64_t(flops);
  g_nanoseconds += int64_t((now_seconds() - start) * 1e9);
}

ConvStats conv_stats() { return {double(g_flops.load()), double(g_nanoseconds.load()) * 1e-9}; }

namespace {
std::atomic<ConvBackend> g_backend{dnnl_available() ? ConvBackend::onednn : ConvBackend::im2col};
}  // namespace

ConvBackend conv_backend() { return g_backend; }

void set_conv_backend(ConvBackend b) {
  if (b == ConvBackend::onednn && !dnnl_available())
    throw std::invalid_argument("the oneDNN convolutions are not in this build (built without oneDNN)");
  g_backend = b;
}

void conv_frame(const ConvWeights& w, const float* const* in, const ConvGeometry& g, float* out) {
  const double start = detail::now_seconds();
  if (!(g_backend == ConvBackend::onednn && dnnl_conv_frame(w, in, g, out))) conv_frame_tiles(w, in, g, out);
  detail::count_conv(2.0 * double(g.out_h) * g.out_w * double(w.k()) * w.cout, start);
}

namespace {
void conv_frame_tiles(const ConvWeights& w, const float* const* in, const ConvGeometry& g, float* out) {
  const int64_t pixels = int64_t(g.out_h) * g.out_w;
  const bool pointwise = w.kt == 1 && w.kh == 1 && w.kw == 1 && g.upsample == 1 && g.stride == 1 &&
                         g.pad_top == 0 && g.pad_left == 0 && in[0];
  if (pointwise) return gemm_rows(w, in[0], pixels, out);
  const int64_t K = w.k();
  // A gathered tile of about 8 MB: large enough for the GEMM, small beside the frames.
  const int64_t tile = std::clamp<int64_t>((int64_t(8) << 20) / (K * 4), 64, 8192);
  std::vector<float> col(size_t(std::min(tile, pixels) * K));
  for (int64_t p0 = 0; p0 < pixels; p0 += tile) {
    const int64_t rows = std::min(tile, pixels - p0);
    gather(w, in, g, p0, rows, col.data());
    gemm_rows(w, col.data(), rows, out + p0 * w.cout);
  }
}
}  // namespace

void conv_frame_ref(const ConvWeights& w, const float* const* in, const ConvGeometry& g, float* out) {
  const int taps = w.kt * w.kh * w.kw;
  std::vector<float> W = w.w;
  if (w.is_bf16()) {
    W.resize(size_t(w.cout) * w.k());
    w.packed.unpack(W.data());
  }
  auto input = [&](float v) { return w.is_bf16() ? gemm::round_bf16(v) : v; };
  const int uh = g.in_h * g.upsample, uw = g.in_w * g.upsample;
  for (int oy = 0; oy < g.out_h; ++oy)
    for (int ox = 0; ox < g.out_w; ++ox)
      for (int o = 0; o < w.cout; ++o) {
        double s = w.bias[size_t(o)];
        for (int t = 0; t < taps; ++t) {
          const int dt = t / (w.kh * w.kw), dy = t / w.kw % w.kh, dx = t % w.kw;
          const int y = oy * g.stride + dy - g.pad_top, x = ox * g.stride + dx - g.pad_left;
          if (!in[dt] || y < 0 || y >= uh || x < 0 || x >= uw) continue;
          const float* src = in[dt] + (int64_t(y / g.upsample) * g.in_w + x / g.upsample) * w.cin;
          const float* wr = W.data() + (size_t(o) * taps + t) * w.cin;
          for (int i = 0; i < w.cin; ++i) s += double(wr[i]) * input(src[i]);
        }
        out[(int64_t(oy) * g.out_w + ox) * w.cout + o] = float(s);
      }
}

}  // namespace ditgen::vae
