#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "attention/kernel/kernel.h"

namespace ditgen::attn {

void reference_attention(const float* q, const float* k, const float* v, float* out, int heads, int64_t tokens,
                         int head_dim, const BlockMap* map) {
  const double scale = 1.0 / std::sqrt(double(head_dim));
#pragma omp parallel
  {
    std::vector<double> s(static_cast<size_t>(tokens));
    std::vector<char> allowed(static_cast<size_t>(tokens));
    std::vector<double> acc(static_cast<size_t>(head_dim));
#pragma omp for collapse(2) schedule(dynamic, 16)
    for (int h = 0; h < heads; ++h) {
      for (int64_t i = 0; i < tokens; ++i) {
        const float* qi = q + (int64_t(h) * tokens + i) * head_dim;
        if (map == nullptr) {
          std::fill(allowed.begin(), allowed.end(), 1);
        } else {
          map->row_keys(map->map_of_head(h), i, allowed);
        }
        double mx = -std::numeric_limits<double>::infinity();
        for (int64_t j = 0; j < tokens; ++j) {
          if (!allowed[size_t(j)]) continue;
          const float* kj = k + (int64_t(h) * tokens + j) * head_dim;
          double d = 0;
          for (int c = 0; c < head_dim; ++c) d += double(qi[c]) * double(kj[c]);
          s[size_t(j)] = d * scale;
          mx = std::max(mx, s[size_t(j)]);
        }
        std::fill(acc.begin(), acc.end(), 0.0);
        double sum = 0;
        for (int64_t j = 0; j < tokens; ++j) {
          if (!allowed[size_t(j)]) continue;
          const double p = std::exp(s[size_t(j)] - mx);
          sum += p;
          const float* vj = v + (int64_t(h) * tokens + j) * head_dim;
          for (int c = 0; c < head_dim; ++c) acc[size_t(c)] += p * double(vj[c]);
        }
        float* o = out + (int64_t(h) * tokens + i) * head_dim;
        for (int c = 0; c < head_dim; ++c) o[c] = float(acc[size_t(c)] / sum);
      }
    }
  }
}

}  // namespace ditgen::attn
