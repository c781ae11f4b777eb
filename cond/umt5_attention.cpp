#include "cond/umt5_attention.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "dit/gemm.h"

namespace ditgen::cond {

void biased_attention(const float* q, const float* k, const float* v, int64_t L, int heads, int64_t head_dim,
                      const float* rel_bias, float* out) {
  const int64_t W = int64_t(heads) * head_dim, Dh = head_dim;
  const gemm::Backend backend = gemm::active_backend();
#pragma omp parallel
  {
    std::vector<float> qh(size_t(L * Dh)), kh(size_t(L * Dh)), vt(size_t(Dh * L));  // (L, Dh), (L, Dh), (Dh, L)
    std::vector<float> s(size_t(L * L)), oh(size_t(L * Dh));                       // (L, L), (L, Dh)
#pragma omp for schedule(dynamic)
    for (int h = 0; h < heads; ++h) {
      for (int64_t i = 0; i < L; ++i)
        for (int64_t d = 0; d < Dh; ++d) {
          qh[size_t(i * Dh + d)] = q[i * W + h * Dh + d];
          kh[size_t(i * Dh + d)] = k[i * W + h * Dh + d];
          vt[size_t(d * L + i)] = v[i * W + h * Dh + d];
        }
      gemm::matmul_nt(backend, qh.data(), L, Dh, kh.data(), L, s.data());
      const float* bias = rel_bias + int64_t(h) * (2 * L - 1);
      for (int64_t i = 0; i < L; ++i) {
        float* row = s.data() + i * L;
        const float* b = bias + (L - 1 - i);  // b[j] is the bias of rel j - i
        float mx = -INFINITY;
        for (int64_t j = 0; j < L; ++j) {
          row[j] += b[j];
          mx = std::max(mx, row[j]);
        }
        float sum = 0;
        for (int64_t j = 0; j < L; ++j) {
          row[j] = std::exp(row[j] - mx);
          sum += row[j];
        }
        const float inv = 1.0f / sum;
        for (int64_t j = 0; j < L; ++j) row[j] *= inv;
      }
      gemm::matmul_nt(backend, s.data(), L, L, vt.data(), Dh, oh.data());
      for (int64_t i = 0; i < L; ++i) std::copy_n(oh.data() + i * Dh, Dh, out + i * W + h * Dh);
    }
  }
}

void biased_attention_ref(const float* q, const float* k, const float* v, int64_t L, int heads, int64_t head_dim,
                          const float* rel_bias, float* out) {
  const int64_t W = int64_t(heads) * head_dim;
  std::vector<double> p(static_cast<size_t>(L));
  for (int h = 0; h < heads; ++h)
    for (int64_t i = 0; i < L; ++i) {
      double mx = -INFINITY;
      for (int64_t j = 0; j < L; ++j) {
        double s = rel_bias[int64_t(h) * (2 * L - 1) + (j - i + L - 1)];
        for (int64_t d = 0; d < head_dim; ++d) s += double(q[i * W + h * head_dim + d]) * k[j * W + h * head_dim + d];
        p[size_t(j)] = s;
        mx = std::max(mx, s);
      }
      double sum = 0;
      for (int64_t j = 0; j < L; ++j) sum += (p[size_t(j)] = std::exp(p[size_t(j)] - mx));
      for (int64_t d = 0; d < head_dim; ++d) {
        double acc = 0;
        for (int64_t j = 0; j < L; ++j) acc += p[size_t(j)] * v[j * W + h * head_dim + d];
        out[i * W + h * head_dim + d] = float(acc / sum);
      }
    }
}

}  // namespace ditgen::cond
