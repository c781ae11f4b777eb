#include "dit/ops.h"

#include "dit/gemm.h"

#include <Eigen/Core>
#include <cmath>

namespace ditgen::ops {


void linear(const float* x, int64_t rows, int64_t in, const float* W, const float* b, int64_t out, float* y) {
  gemm::matmul_nt(gemm::active_backend(), x, rows, in, W, out, y);
  if (b != nullptr) {
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t o = 0; o < out; ++o) y[r * out + o] += b[o];
  }
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

void rms_norm(const float* x, int64_t rows, int64_t width, double eps, const float* w, float* y) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * width;
    float* yr = y + r * width;
    float ss = 0;
    for (int64_t i = 0; i < width; ++i) ss += xr[i] * xr[i];
    const float inv = 1.0f / std::sqrt(ss / float(width) + float(eps));
    for (int64_t i = 0; i < width; ++i) yr[i] = xr[i] * inv * w[i];
  }
}

void rms_norm_ref(const float* x, int64_t rows, int64_t width, double eps, const float* w, float* y) {
  for (int64_t r = 0; r < rows; ++r) {
    double ss = 0;
    for (int64_t i = 0; i < width; ++i) ss += double(x[r * width + i]) * x[r * width + i];
    const double inv = 1.0 / std::sqrt(ss / double(width) + eps);
    for (int64_t i = 0; i < width; ++i) y[r * width + i] = float(x[r * width + i] * inv * w[i]);
  }
}

float gelu_tanh_ref(float u) {
  const double d = u;
  return float(0.5 * d * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (d + 0.044715 * d * d * d))));
}

void gelu_tanh(float* x, int64_t n) {
  const float c = float(std::sqrt(2.0 / M_PI));
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float u = x[i];
    x[i] = 0.5f * u * (1.0f + std::tanh(c * (u + 0.044715f * u * u * u)));
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

}  // namespace ditgen::ops
