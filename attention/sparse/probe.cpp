// Sampled rows, and the sampled-row error estimate of dense_steps=auto.
#include "attention/sparse/probe.h"

#include <algorithm>
#include <cmath>

#include "attention/sparse/sparse_backend.h"

namespace ditgen::attn {

std::vector<int64_t> sample_rows(int64_t tokens, int count, uint64_t seed, int64_t limit) {
  const int64_t n = limit > 0 ? std::min(tokens, limit) : tokens;
  std::vector<int64_t> rows;
  if (count >= n) {
    for (int64_t i = 0; i < n; ++i) rows.push_back(i);
    return rows;
  }
  uint64_t z = seed;
  auto next = [&z]() {
    z += 0x9E3779B97F4A7C15ull;
    uint64_t x = z;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
  };
  std::vector<char> taken(static_cast<size_t>(n), 0);
  while (int(rows.size()) < count) {
    const int64_t i = int64_t(next() % uint64_t(n));
    if (!taken[size_t(i)]) {
      taken[size_t(i)] = 1;
      rows.push_back(i);
    }
  }
  std::sort(rows.begin(), rows.end());
  return rows;
}

double SparseBackend::auto_estimate(const AttentionInputs& in, const float* dense_out, const AttentionContext& ctx) {
  const int heads = in.batch * in.heads;
  const int64_t n = in.tokens;
  const int dh = in.head_dim;
  const std::vector<int64_t> rows =
      sample_rows(n, common_.schedule.auto_rows, 0x5eed0000ull + uint64_t(ctx.step) * 1009u + uint64_t(ctx.layer));
  double err = 0, ref = 0;
  if (is_static()) {
    const BlockMap& m = static_map(*in.layout);
    std::vector<double> e(static_cast<size_t>(heads)), r(static_cast<size_t>(heads));
#pragma omp parallel for schedule(dynamic, 1)
    for (int h = 0; h < heads; ++h) {
      std::vector<float> o(rows.size() * size_t(dh));
      const int64_t off = int64_t(h) * n * dh;
      reference_rows(in.q + off, in.k + off, in.v + off, n, dh, &m, m.map_of_head(h), rows, o.data());
      for (size_t ri = 0; ri < rows.size(); ++ri)
        for (int c = 0; c < dh; ++c) {
          const double d = dense_out[off + rows[ri] * dh + c], s = o[ri * size_t(dh) + size_t(c)];
          e[size_t(h)] += (s - d) * (s - d);
          r[size_t(h)] += d * d;
        }
    }
    for (int h = 0; h < heads; ++h) err += e[size_t(h)], ref += r[size_t(h)];
  } else {
    // Dynamic methods: one full sparse pass, compared on the sampled rows.
    scratch_.resize(size_t(heads) * size_t(n) * size_t(dh));
    sparse_attend(in, scratch_.data(), ctx);
    for (int h = 0; h < heads; ++h) {
      const int64_t off = int64_t(h) * n * dh;
      for (int64_t i : rows)
        for (int c = 0; c < dh; ++c) {
          const double d = dense_out[off + i * dh + c], s = scratch_[size_t(off + i * dh + c)];
          err += (s - d) * (s - d);
          ref += d * d;
        }
    }
  }
  return ref > 0 ? std::sqrt(err / ref) : std::sqrt(err);
}

}  // namespace ditgen::attn
