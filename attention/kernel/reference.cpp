// The kernel's plain twin (double accumulation over materialised score rows), the sampled-row
// variant the sparse schedule and probes use, and the exact merge of two partial results.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "attention/kernel/kernel.h"

namespace ditgen::attn {

namespace {
// One query row against the allowed keys: out (Dh) and, if lse, its log-sum-exp.
void reference_row(const float* qi, const float* k, const float* v, int64_t kv_len, int head_dim,
                   const std::vector<char>& allowed, std::vector<double>& s, std::vector<double>& acc, float* out,
                   float* lse) {
  const double scale = 1.0 / std::sqrt(double(head_dim));
  double mx = -std::numeric_limits<double>::infinity();
  for (int64_t j = 0; j < kv_len; ++j) {
    if (!allowed[size_t(j)]) continue;
    const float* kj = k + j * head_dim;
    double d = 0;
    for (int c = 0; c < head_dim; ++c) d += double(qi[c]) * double(kj[c]);
    s[size_t(j)] = d * scale;
    mx = std::max(mx, s[size_t(j)]);
  }
  std::fill(acc.begin(), acc.end(), 0.0);
  double sum = 0;
  for (int64_t j = 0; j < kv_len; ++j) {
    if (!allowed[size_t(j)]) continue;
    const double p = std::exp(s[size_t(j)] - mx);
    sum += p;
    const float* vj = v + j * head_dim;
    for (int c = 0; c < head_dim; ++c) acc[size_t(c)] += p * double(vj[c]);
  }
  if (sum == 0) {  // no key: the kernel's convention for the empty rows of split calls
    std::fill(out, out + head_dim, 0.0f);
    if (lse) *lse = -std::numeric_limits<float>::infinity();
    return;
  }
  for (int c = 0; c < head_dim; ++c) out[c] = float(acc[size_t(c)] / sum);
  if (lse) *lse = float(mx + std::log(sum));
}

void row_mask(const BlockMap* map, int map_index, int64_t query, int64_t kv_len, std::vector<char>& allowed) {
  if (map == nullptr) {
    allowed.assign(size_t(kv_len), 1);
  } else {
    map->row_keys(map_index, query, allowed);
  }
}
}  // namespace

void reference_attention(const AttentionCall& c) {
  const int64_t nq = c.q_len, nk = c.kv_len;
  const int dh = c.head_dim;
#pragma omp parallel
  {
    std::vector<double> s(static_cast<size_t>(nk)), acc(static_cast<size_t>(dh));
    std::vector<char> allowed;
#pragma omp for collapse(2) schedule(dynamic, 16)
    for (int h = 0; h < c.heads; ++h)
      for (int64_t i = 0; i < nq; ++i) {
        row_mask(c.map, c.map ? c.map->map_of_head(h) : 0, i, nk, allowed);
        reference_row(c.q + (int64_t(h) * nq + i) * dh, c.k + int64_t(h) * nk * dh, c.v + int64_t(h) * nk * dh, nk, dh,
                      allowed, s, acc, c.out + (int64_t(h) * nq + i) * dh, c.lse ? c.lse + int64_t(h) * nq + i : nullptr);
      }
  }
}

void reference_rows(const float* q, const float* k, const float* v, int64_t kv_len, int head_dim,
                    const BlockMap* map, int map_index, const std::vector<int64_t>& rows, float* out) {
  std::vector<double> s(static_cast<size_t>(kv_len)), acc(static_cast<size_t>(head_dim));
  std::vector<char> allowed;
  for (size_t r = 0; r < rows.size(); ++r) {
    row_mask(map, map_index, rows[r], kv_len, allowed);
    reference_row(q + rows[r] * head_dim, k, v, kv_len, head_dim, allowed, s, acc, out + r * size_t(head_dim), nullptr);
  }
}

void merge_partials(float* out_a, float* lse_a, const float* out_b, const float* lse_b, int64_t rows, int head_dim) {
#pragma omp parallel for schedule(static) if (rows * head_dim > 65536)
  for (int64_t i = 0; i < rows; ++i) {
    const float la = lse_a[i], lb = lse_b[i];
    const float m = std::max(la, lb);
    if (m == -INFINITY) continue;  // neither part saw a key
    const float wa = std::exp(la - m), wb = std::exp(lb - m), inv = 1.0f / (wa + wb);
    float* a = out_a + i * head_dim;
    const float* b = out_b + i * head_dim;
    for (int c = 0; c < head_dim; ++c) a[c] = (wa * a[c] + wb * b[c]) * inv;
    lse_a[i] = m + std::log(wa + wb);
  }
}

}  // namespace ditgen::attn
