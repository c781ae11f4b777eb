// Classifier-free guidance: v = v_u + g (v_c - v_u) (docs/model.md section 8).
#include <cmath>
#include <stdexcept>
#include <string>

#include "sampler/sampler.h"

namespace ditgen::sampler {

Guidance::Guidance(double scale) : scale_(scale) {
  if (!std::isfinite(scale))
    throw std::invalid_argument("guidance: scale must be finite, got " + std::to_string(scale));
}

void Guidance::combine(const float* v_cond, const float* v_uncond, float* out, int64_t n) const {
  if (n < 0) throw std::invalid_argument("guidance: negative element count");
  // Exact copies at the two trivial scales (out may alias either input: elementwise).
  if (scale_ == 1.0) {
    if (out != v_cond) {
#pragma omp parallel for schedule(static) if (n > 65536)
      for (int64_t j = 0; j < n; ++j) out[j] = v_cond[j];
    }
    return;
  }
  if (scale_ == 0.0) {
    if (out != v_uncond) {
#pragma omp parallel for schedule(static) if (n > 65536)
      for (int64_t j = 0; j < n; ++j) out[j] = v_uncond[j];
    }
    return;
  }
  const double g = scale_;
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t j = 0; j < n; ++j) {
    const double u = v_uncond[j];
    out[j] = static_cast<float>(u + g * (static_cast<double>(v_cond[j]) - u));
  }
}

void Guidance::combine_batched(const float* v_batch, float* out, int64_t n) const {
  if (!active()) {
    combine(v_batch, v_batch, out, n);  // scale 1: a copy of the conditional block
    return;
  }
  combine(v_batch, v_batch + n, out, n);
}

}  // namespace ditgen::sampler
