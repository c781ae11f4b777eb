#include "dit/rope.h"

#include <cassert>
#include <cmath>
#include <stdexcept>
#include <string>

namespace ditgen {

namespace {
// Angle of pair k for coordinate c; the only place the t/h/w split is computed.
double pair_angle(const DiTConfig& cfg, const Coord& c, int k, RopeExtrapolation ext, int frames) {
  const int pt = cfg.rope_dims_t() / 2, phw = cfg.rope_dims_hw() / 2;
  int axis_pair, width, pos;
  if (k < pt) {
    axis_pair = k, width = cfg.rope_dims_t(), pos = c.t;
  } else if (k < pt + phw) {
    axis_pair = k - pt, width = cfg.rope_dims_hw(), pos = c.h;
  } else {
    axis_pair = k - pt - phw, width = cfg.rope_dims_hw(), pos = c.w;
  }
  if (k < pt && axis_pair == ext.riflex_k - 1) return double(pos) * 0.9 * 2.0 * M_PI / double(frames);
  const double omega = std::pow(cfg.rope_theta, -2.0 * axis_pair / double(width));
  return double(pos) * omega;
}
}  // namespace

void check_riflex_pair(const DiTConfig& cfg, int k) {
  const int pairs = cfg.rope_dims_t() / 2;
  if (k < 1 || k > pairs)
    throw std::invalid_argument(std::to_string(k) + " is out of range: expected a temporal rotary pair from 1 to " +
                                std::to_string(pairs));
}

void Rope3D::build(const DiTConfig& cfg, const TokenLayout& layout, RopeExtrapolation ext) {
  pairs_ = cfg.head_dim() / 2;
  const int64_t n = layout.tokens();
  cos_.resize(size_t(n * pairs_));
  sin_.resize(size_t(n * pairs_));
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const Coord c = layout.coord(i);
    for (int k = 0; k < pairs_; ++k) {
      const double a = pair_angle(cfg, c, k, ext, layout.frames());
      cos_[size_t(i * pairs_ + k)] = float(std::cos(a));
      sin_[size_t(i * pairs_ + k)] = float(std::sin(a));
    }
  }
}

void Rope3D::apply(const float* x, int64_t i, float* y) const {
  const float* cs = cos_.data() + i * pairs_;
  const float* sn = sin_.data() + i * pairs_;
  for (int k = 0; k < pairs_; ++k) {
    const float a = x[2 * k], b = x[2 * k + 1];
    y[2 * k] = a * cs[k] - b * sn[k];
    y[2 * k + 1] = a * sn[k] + b * cs[k];
  }
}

void rope_ref(const DiTConfig& cfg, const Coord& c, const float* x, float* y, RopeExtrapolation ext, int frames) {
  assert(ext.riflex_k == 0 || frames > 0);
  for (int k = 0; k < cfg.head_dim() / 2; ++k) {
    const double a = pair_angle(cfg, c, k, ext, frames);
    const double u = x[2 * k], v = x[2 * k + 1];
    y[2 * k] = float(u * std::cos(a) - v * std::sin(a));
    y[2 * k + 1] = float(u * std::sin(a) + v * std::cos(a));
  }
}

}  // namespace ditgen
