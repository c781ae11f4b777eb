#include "attention/sparse/residual.h"

#include <algorithm>
#include <cstdint>

namespace ditgen::attn {

void ResidualCache::reset(int num_layers) {
  valid_.assign(size_t(num_layers), 0);
  r_.resize(size_t(num_layers));
}

std::vector<float>& ResidualCache::store(int layer, size_t elements) {
  std::vector<float>& r = r_.at(size_t(layer));
  r.resize(elements);
  valid_.at(size_t(layer)) = 1;
  return r;
}

const std::vector<float>* ResidualCache::find(int layer, size_t elements) const {
  if (layer >= int(valid_.size()) || !valid_[size_t(layer)] || r_[size_t(layer)].size() != elements) return nullptr;
  return &r_[size_t(layer)];
}

void ResidualCache::finish_anchor(const float* dense, std::vector<float>& r) {
  const int64_t n = int64_t(r.size());
  float* p = r.data();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) p[i] = dense[i] - p[i];
}

void ResidualCache::add(float* out, const std::vector<float>& r) {
  const int64_t n = int64_t(r.size());
  const float* p = r.data();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) out[i] += p[i];
}

}  // namespace ditgen::attn
