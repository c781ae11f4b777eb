#include "attention/sparse/recall_probe.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <limits>
#include <random>

namespace ditgen::attn {

RecallProbe::RecallProbe(AttentionBackend& inner, int rows_per_head, uint64_t seed)
    : inner_(inner), rows_(rows_per_head), seed_(seed) {}

double kept_mass(const float* q_row, const float* keys, int64_t tokens, int head_dim,
                 const std::function<bool(int64_t)>& keep) {
  const double scale = 1.0 / std::sqrt(double(head_dim));
  std::vector<double> s(static_cast<size_t>(tokens));
  double mx = -std::numeric_limits<double>::infinity();
  for (int64_t j = 0; j < tokens; ++j) {
    double d = 0;
    const float* kj = keys + j * head_dim;
    for (int c = 0; c < head_dim; ++c) d += double(q_row[c]) * kj[c];
    s[size_t(j)] = d * scale;
    mx = std::max(mx, s[size_t(j)]);
  }
  double all = 0, kept = 0;
  for (int64_t j = 0; j < tokens; ++j) {
    const double p = std::exp(s[size_t(j)] - mx);
    all += p;
    if (keep(j)) kept += p;
  }
  return kept / all;
}

AttendReport RecallProbe::attend(const AttentionInputs& in, float* out, const AttentionContext& ctx) {
  AttendReport report = inner_.attend(in, out, ctx);
  const auto t0 = std::chrono::steady_clock::now();
  if (rows_ > 0) {
    std::mt19937_64 rng(seed_ + 0x9E3779B97F4A7C15ull * ++calls_);
    std::uniform_int_distribution<int64_t> pick(0, in.tokens - 1);
    const int heads = in.batch * in.heads;
    std::vector<int64_t> rows(size_t(heads) * rows_);
    for (auto& r : rows) r = pick(rng);
    double sum = 0;
    const int n = int(rows.size());
#pragma omp parallel for reduction(+ : sum) schedule(dynamic, 1)
    for (int i = 0; i < n; ++i) {
      const int h = i / rows_;
      const int64_t qi = rows[size_t(i)];
      const float* q = in.q + (int64_t(h) * in.tokens + qi) * in.head_dim;
      const float* k = in.k + int64_t(h) * in.tokens * in.head_dim;
      sum += kept_mass(q, k, in.tokens, in.head_dim, [&](int64_t kj) { return report.allows(h, qi, kj); });
    }
    if (int(sum_.size()) <= ctx.layer) sum_.resize(size_t(ctx.layer) + 1, 0.0), count_.resize(size_t(ctx.layer) + 1, 0.0);
    sum_[size_t(ctx.layer)] += sum;
    count_[size_t(ctx.layer)] += n;
  }
  probe_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return report;
}

std::vector<double> RecallProbe::layer_recall() const {
  std::vector<double> r(sum_.size());
  for (size_t i = 0; i < r.size(); ++i) r[i] = count_[i] > 0 ? sum_[i] / count_[i] : 1.0;
  return r;
}

double RecallProbe::mean_recall() const {
  double s = 0, n = 0;
  for (size_t i = 0; i < sum_.size(); ++i) s += sum_[i], n += count_[i];
  return n > 0 ? s / n : 1.0;
}

}  // namespace ditgen::attn
