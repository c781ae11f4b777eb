#include "core/layout.h"

#include <cstring>
#include <sstream>
#include <stdexcept>

namespace ditgen {

TokenLayout::TokenLayout(int tp, int hp, int wp) : tp_(tp), hp_(hp), wp_(wp) {
  if (tp < 1 || hp < 1 || wp < 1) {
    std::ostringstream s;
    s << "token grid " << tp << "x" << hp << "x" << wp << " must be at least 1x1x1";
    throw std::invalid_argument(s.str());
  }
  order_.resize(size_t(tokens()));
  for (size_t i = 0; i < order_.size(); ++i) order_[i] = int32_t(i);
  finish();
}

TokenLayout::TokenLayout(int tp, int hp, int wp, std::vector<int32_t> order, std::string name)
    : tp_(tp), hp_(hp), wp_(wp), name_(std::move(name)), order_(std::move(order)) {
  if (tp < 1 || hp < 1 || wp < 1) {
    std::ostringstream s;
    s << "token grid " << tp << "x" << hp << "x" << wp << " must be at least 1x1x1";
    throw std::invalid_argument(s.str());
  }
  if (int64_t(order_.size()) != tokens()) {
    std::ostringstream s;
    s << "layout '" << name_ << "' has " << order_.size() << " positions, expected " << tokens();
    throw std::invalid_argument(s.str());
  }
  finish();
}

void TokenLayout::finish() {
  const int64_t n = tokens();
  inverse_.assign(size_t(n), -1);
  coords_.resize(size_t(n));
  identity_ = true;
  for (int64_t i = 0; i < n; ++i) {
    const int32_t src = order_[size_t(i)];
    if (src < 0 || src >= n || inverse_[size_t(src)] != -1) {
      std::ostringstream s;
      s << "layout '" << name_ << "' is not a permutation: position " << i << " maps to " << src;
      throw std::invalid_argument(s.str());
    }
    inverse_[size_t(src)] = int32_t(i);
    coords_[size_t(i)] = frame_major_coord(src);
    identity_ = identity_ && src == i;
  }
}

void TokenLayout::permute(const float* src, float* dst, int64_t width) const {
  const int64_t n = tokens();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i)
    std::memcpy(dst + i * width, src + int64_t(order_[size_t(i)]) * width, sizeof(float) * size_t(width));
}

void TokenLayout::unpermute(const float* src, float* dst, int64_t width) const {
  const int64_t n = tokens();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i)
    std::memcpy(dst + int64_t(order_[size_t(i)]) * width, src + i * width, sizeof(float) * size_t(width));
}

}  // namespace ditgen
