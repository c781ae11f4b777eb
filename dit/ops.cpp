#include "dit/ops.h"

#include "dit/gemm.h"

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstring>

namespace ditgen::ops {


void linear(const float* x, int64_t rows, int64_t in, const float* W, const float* b, int64_t out, float* y) {
  gemm::matmul_nt(gemm::active_backend(), x, rows, in, W, out, y);
  if (b != nullptr) add_bias(y, rows, out, b);
}

void add_bias(float* y, int64_t rows, int64_t out, const float* b) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < out; ++o) y[r * out + o] += b[o];
}

void linear_ref(const float* x, int64_t rows, int64_t in, const float* W, const float* b, int64_t out, float* y) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < out; ++o) {
      double acc = b ? b[o] : 0.0;
      for (int64_t i = 0; i < in; ++i) acc += double(x[r * in + i]) * double(W[o * in + i]);
      y[r * out + o] = float(acc);
    }
}

namespace {
// Mean and reciprocal standard deviation of one row, float accumulation in two passes.
inline void row_stats(const float* x, int64_t width, double eps, float& mean, float& rstd) {
  float s = 0;
  for (int64_t i = 0; i < width; ++i) s += x[i];
  mean = s / float(width);
  float v = 0;
  for (int64_t i = 0; i < width; ++i) {
    const float d = x[i] - mean;
    v += d * d;
  }
  rstd = 1.0f / std::sqrt(v / float(width) + float(eps));
}
}  // namespace

void layer_norm(const float* x, int64_t rows, int64_t width, double eps, const float* w, const float* b, float* y) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * width;
    float* yr = y + r * width;
    float mean, rstd;
    row_stats(xr, width, eps, mean, rstd);
    for (int64_t i = 0; i < width; ++i) {
      float v = (xr[i] - mean) * rstd;
      if (w) v *= w[i];
      if (b) v += b[i];
      yr[i] = v;
    }
  }
}

void layer_norm_ref(const float* x, int64_t rows, int64_t width, double eps, const float* w, const float* b, float* y) {
  for (int64_t r = 0; r < rows; ++r) {
    double m = 0, v = 0;
    for (int64_t i = 0; i < width; ++i) m += x[r * width + i];
    m /= double(width);
    for (int64_t i = 0; i < width; ++i) v += (x[r * width + i] - m) * (x[r * width + i] - m);
    const double rstd = 1.0 / std::sqrt(v / double(width) + eps);
    for (int64_t i = 0; i < width; ++i) {
      double o = (x[r * width + i] - m) * rstd;
      if (w) o *= w[i];
      if (b) o += b[i];
      y[r * width + i] = float(o);
    }
  }
}

void layer_norm_modulate(const float* x, int64_t rows, int64_t width, double eps, const float* shift,
                         const float* scale, float* y) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * width;
    float* yr = y + r * width;
    float mean, rstd;
    row_stats(xr, width, eps, mean, rstd);
    for (int64_t i = 0; i < width; ++i) yr[i] = (xr[i] - mean) * rstd * (1.0f + scale[i]) + shift[i];
  }
}

void rms_norm_row(const float* x, int64_t width, double eps, const float* w, float* y) {
  float ss = 0;
  for (int64_t i = 0; i < width; ++i) ss += x[i] * x[i];
  const float inv = 1.0f / std::sqrt(ss / float(width) + float(eps));
  for (int64_t i = 0; i < width; ++i) y[i] = x[i] * inv * w[i];
}

void rms_norm(const float* x, int64_t rows, int64_t width, double eps, const float* w, float* y) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) rms_norm_row(x + r * width, width, eps, w, y + r * width);
}

void rms_norm_ref(const float* x, int64_t rows, int64_t width, double eps, const float* w, float* y) {
  for (int64_t r = 0; r < rows; ++r) {
    double ss = 0;
    for (int64_t i = 0; i < width; ++i) ss += double(x[r * width + i]) * x[r * width + i];
    const double inv = 1.0 / std::sqrt(ss / double(width) + eps);
    for (int64_t i = 0; i < width; ++i) y[r * width + i] = float(x[r * width + i] * inv * w[i]);
  }
}

// 0.5 u (1 + tanh z) written as u / (1 + e^(-2z)), which is exact algebra and does not cancel
// to 0 for negative u (where 1 + tanh z loses every digit by z = -19 even in double).
float gelu_tanh_ref(float u) {
  const double d = u;
  return float(d / (1.0 + std::exp(-2.0 * std::sqrt(2.0 / M_PI) * (d + 0.044715 * d * d * d))));
}

namespace {

// e^x with relative error below 3e-7 for x in [-87, 88] (inputs outside are clamped there; NaN
// stays NaN), in straight-line float and integer code that the compiler vectorizes, where a
// call to std::exp or std::tanh would run one lane at a time. x = n ln2 + r with ln2 split in
// two (Cody-Waite) so r is exact to |r| <= ln2/2; e^r by its Taylor polynomial to degree 7
// (truncation 5e-9); 2^n written into the exponent bits. Adding 1.5 * 2^23 rounds x log2(e) to
// the integer n held in the low mantissa bits, which avoids a float-to-int conversion.
inline float exp_vectorizable(float x) {
  x = std::min(std::max(x, -87.0f), 88.0f);
  constexpr float kRound = 12582912.0f;  // 1.5 * 2^23, bit pattern 0x4B400000
  const float t = x * 1.44269504088896341f + kRound;
  const float n = t - kRound;
  const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  uint32_t bits;
  std::memcpy(&bits, &t, sizeof bits);
  bits = (bits - 0x4B400000u + 127u) << 23;  // n + 127 in [1, 254]: a normal power of two
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

}  // namespace

// 0.5 u (1 + tanh z) = u / (1 + e^(-2z)): one exponential and no cancellation, so the result
// keeps the exponential's relative error for every u.
void gelu_tanh(float* x, int64_t n) {
  const float c = float(std::sqrt(2.0 / M_PI));
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float u = x[i];
    x[i] = u / (1.0f + exp_vectorizable(-2.0f * c * (u + 0.044715f * u * u * u)));
  }
}

void silu(const float* x, int64_t n, float* y) {
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] / (1.0f + std::exp(-x[i]));
}

void gated_add(float* x, const float* y, const float* gate, int64_t rows, int64_t width) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < width; ++i) x[r * width + i] += gate[i] * y[r * width + i];
}

void move_heads(const float* src, float* dst, int batch, int64_t n, int heads, int head_dim, bool to_heads) {
  const int64_t D = int64_t(heads) * head_dim;
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < int64_t(batch) * n; ++r) {
    const int64_t b = r / n, i = r % n;
    for (int h = 0; h < heads; ++h) {
      const int64_t row = r * D + int64_t(h) * head_dim, head = ((b * heads + h) * n + i) * head_dim;
      std::memcpy(dst + (to_heads ? head : row), src + (to_heads ? row : head), sizeof(float) * size_t(head_dim));
    }
  }
}

}  // namespace ditgen::ops
