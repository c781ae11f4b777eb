#pragma once
// 3D rotary position embedding (docs/model.md §6): the head dimension is split into t, h and w
// pairs, interleaved (x[2k], x[2k+1]); angles from the token's (t, h, w) in the layout.
#include <cstdint>
#include <vector>

#include "dit/config.h"
#include "core/layout.h"

namespace ditgen {

// RIFLEx (Zhao et al., ICML 2025), training-free temporal extrapolation: the temporal pair
// `riflex_k` (1-based, as the paper counts) turns at 0.9·2π/Tp per frame, Tp the run's frames
// in tokens, so that it stays within one period over a video longer than the model was
// trained on; every other pair is unchanged. 0: off.
struct RopeExtrapolation {
  int riflex_k = 0;
};

// Throws std::invalid_argument ("K is out of range: expected a temporal rotary pair from 1 to
// N") unless 1 <= k <= the model's temporal pairs.
void check_riflex_pair(const DiTConfig& cfg, int k);

class Rope3D {
 public:
  // Tables for every position of `layout` (layout order), angles in float64.
  void build(const DiTConfig& cfg, const TokenLayout& layout, RopeExtrapolation ext = {});
  // y (Dh) = rotate(x (Dh)) for the token at layout position i; in place allowed.
  void apply(const float* x, int64_t i, float* y) const;
  int pairs() const { return pairs_; }

 private:
  int pairs_ = 0;
  std::vector<float> cos_, sin_;  // (N, Dh/2)
};

// Plain twin: rotates one head vector for coordinate c of a run of `frames` token frames,
// everything in double.
void rope_ref(const DiTConfig& cfg, const Coord& c, const float* x, float* y, RopeExtrapolation ext = {},
              int frames = 0);

}  // namespace ditgen
