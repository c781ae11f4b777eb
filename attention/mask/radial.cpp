#include "attention/mask/radial.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <stdexcept>

namespace ditgen::attn {

int bit_length(int64_t x) {
  int n = 0;
  for (uint64_t u = uint64_t(x < 0 ? -x : x); u; u >>= 1) ++n;
  return n;
}

double radial_band(int i, int j, int64_t tpf, const RadialRule& rule) {
  if (rule.sink && j == 0) return double(tpf);
  const int64_t dist = std::llabs(int64_t(i) - j);
  const int group = bit_length(dist);
  const double top = std::ldexp(1.0, bit_length(tpf));  // 2^bitlen(tpf)
  // Frequency split (no decay), applied to every pair, near ones included.
  const double split_len = top / std::ldexp(1.0, group);
  if (split_len < rule.block) {
    const int64_t factor = int64_t(double(rule.block) / split_len);
    if (dist % factor != 0) return -1;
  }
  if (dist <= 1) return double(tpf);
  const double w = split_len * rule.decay;
  return std::max(w, double(rule.block));
}

bool radial_allows(int64_t q_fm, int64_t k_fm, int64_t tpf, const RadialRule& rule) {
  const int i = int(q_fm / tpf), j = int(k_fm / tpf);
  const double w = radial_band(i, j, tpf, rule);
  if (w < 0) return false;
  return double(std::llabs((q_fm % tpf) - (k_fm % tpf))) <= w;
}

std::vector<char> radial_block_grid(int frames, int64_t tpf, const RadialRule& rule) {
  if (frames < 1 || tpf < 1) throw std::invalid_argument("radial: needs at least one frame and one token per frame");
  if (rule.block < 1) throw std::invalid_argument("radial: block must be positive");
  const int64_t B = rule.block;
  const int64_t n = int64_t(frames) * tpf;
  const int nb = int((n + B - 1) / B);
  const int nbl = int((tpf + B - 1) / B);  // blocks of one frame pair's padded grid
  std::vector<char> grid(size_t(nb) * nb, 0);
  // Column counts of a band |c - r| <= W over local rows [r0, r1), for one column c.
  auto column_count = [](int64_t c, int64_t r0, int64_t r1, int64_t W) -> int64_t {
    const int64_t lo = std::max(r0, c - W), hi = std::min(r1, c + W + 1);
    return hi > lo ? hi - lo : 0;
  };
  for (int i = 0; i < frames; ++i) {
    for (int j = 0; j < frames; ++j) {
      const double w = radial_band(i, j, tpf, rule);
      if (w < 0) continue;
      const int64_t W = w >= double(tpf) ? tpf : int64_t(std::floor(w));
      const int64_t rem_r = (int64_t(i) * tpf) % B, rem_c = (int64_t(j) * tpf) % B;
      const int64_t row0 = (int64_t(i) * tpf) / B, col0 = (int64_t(j) * tpf) / B;
      for (int a = 0; a < nbl; ++a) {
        // Local rows of padded block row a.
        const int64_t r0 = std::max<int64_t>(0, a * B - rem_r), r1 = std::min<int64_t>(tpf, (a + 1) * B - rem_r);
        if (r1 <= r0 || row0 + a >= nb) continue;
        for (int b = 0; b < nbl; ++b) {
          if (col0 + b >= nb) continue;
          char& cell = grid[size_t(row0 + a) * nb + size_t(col0 + b)];
          if (cell) continue;
          const int64_t c0 = std::max<int64_t>(0, b * B - rem_c), c1 = std::min<int64_t>(tpf, (b + 1) * B - rem_c);
          int64_t nonzero = 0, high = 0;
          for (int64_t c = c0; c < c1; ++c) {
            const int64_t cnt = column_count(c, r0, r1, W);
            nonzero += cnt > 0;
            high += 3 * cnt > B;  // column density cnt / B > 1/3
          }
          if (5 * high > 3 * nonzero) cell = 1;  // more than 60% of non-empty columns
        }
      }
    }
  }
  // A short tail block (tokens not a multiple of B) can fail the one-third column rule in every
  // frame pair and be left without keys; the published code never builds that block (its grid
  // is floor(N / B) wide). Give such rows their diagonal block.
  for (int a = 0; a < nb; ++a) {
    bool any = false;
    for (int b = 0; b < nb && !any; ++b) any = grid[size_t(a) * nb + b] != 0;
    if (!any) grid[size_t(a) * nb + a] = 1;
  }
  return grid;
}

RadialGridMask::RadialGridMask(const TokenLayout& layout, const RadialRule& rule)
    : layout_(layout), block_(rule.block) {
  const int64_t tpf = layout.tokens_per_frame();
  grid_ = radial_block_grid(layout.frames(), tpf, rule);
  nb_ = int((layout.tokens() + block_ - 1) / block_);
}

bool RadialGridMask::allowed(int64_t q, int64_t k) const {
  const int64_t a = layout_.order()[size_t(q)] / block_, b = layout_.order()[size_t(k)] / block_;
  return grid_[size_t(a) * nb_ + size_t(b)] != 0;
}

bool RadialTokenMask::allowed(int64_t q, int64_t k) const {
  return radial_allows(layout_.order()[size_t(q)], layout_.order()[size_t(k)], layout_.tokens_per_frame(), rule_);
}

Radial3dMask::Radial3dMask(const TokenLayout& layout, const Radial3dRule& rule) : layout_(layout), rule_(rule) {
  if (rule.tile.h < 1 || rule.tile.w < 1 || rule.tile.t < 1) throw std::invalid_argument("radial3d: tile must be positive");
  tiles_h_ = (layout.height() + rule.tile.h - 1) / rule.tile.h;
  tiles_w_ = (layout.width() + rule.tile.w - 1) / rule.tile.w;
}

bool Radial3dMask::allowed(int64_t q, int64_t k) const {
  const Coord cq = layout_.coord(q), ck = layout_.coord(k);
  if (rule_.sink && ck.t == 0) return true;
  const int dt = std::abs(cq.t - ck.t);
  if (dt <= 1) return true;
  const int g = bit_length(dt);
  const double scale = std::ldexp(1.0, g - 2);
  const double area = double(tiles_h_) * tiles_w_ / (scale * scale);
  if (area < 1.0) {
    const int64_t factor = int64_t(1.0 / area);
    if (dt % factor != 0) return false;
  }
  auto inside = [&](int tiles, double extent_tiles, int tile, int qc, int kc) {
    const int n = std::min(tiles, std::max(1, int(std::lround(extent_tiles * rule_.decay / scale))));
    const int qt = qc / tile, kt = kc / tile;
    const int start = std::clamp(qt - n / 2, 0, tiles - n);
    return kt >= start && kt < start + n;
  };
  return inside(tiles_h_, tiles_h_, rule_.tile.h, cq.h, ck.h) && inside(tiles_w_, tiles_w_, rule_.tile.w, cq.w, ck.w);
}

}  // namespace ditgen::attn
