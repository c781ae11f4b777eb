#pragma once
// Radial Attention (Li et al. 2025): the static energy-decay mask, ported from the rule the
// published code builds (gen_log_mask_shrinked), and a 3D variant in tile units.
//
// 1D rule, on frame-major flattened indices (tpf tokens per frame, frame pair (i, j), dist = |i-j|,
// bitlen(x) = floor(log2 x) + 1, B = block size, which is also the rule's threshold):
//  - sink: j == 0 keeps the whole frame pair (the Wan path; off = the Hunyuan path, no sink)
//  - window: dist <= 1 keeps the whole frame pair; otherwise the band |l - k| <= w of local token
//    indices, w = max(2^bitlen(tpf) / 2^bitlen(dist) * decay, B)
//  - frequency split: L = 2^bitlen(tpf) / 2^bitlen(dist); if L < B the pair is kept only when
//    dist % int(B / L) == 0
//  - shrink: each frame pair's tpf x tpf mask is placed at offset (i*tpf mod B, j*tpf mod B) of a
//    ceil(tpf/B)*B grid, and a B x B block is kept when more than 60% of its non-empty columns
//    have more than a third of their B rows set; kept blocks are OR-ed into the global grid and
//    computed whole. A block row left empty (only a short tail block can be) keeps its diagonal.
#include <cstdint>
#include <vector>

#include "attention/mask/mask.h"
#include "attention/mask/reorder.h"

namespace ditgen::attn {

struct RadialRule {
  double decay = 0.2;  // decay_factor
  int block = 128;     // block size and threshold of the rule
  bool sink = true;    // first frame as a sink (Wan path)
};

int bit_length(int64_t x);  // Python's int.bit_length

// Band half-width (in tokens, local indices) of frame pair (i, j): -1 when the pair is dropped,
// >= tpf when the whole pair is kept.
double radial_band(int i, int j, int64_t tpf, const RadialRule& rule);

// The shrunk block grid over frame-major order: nb x nb row-major, nb = ceil(frames*tpf / B).
std::vector<char> radial_block_grid(int frames, int64_t tpf, const RadialRule& rule);

// Element predicate of the unshrunk rule over frame-major indices (for shrink=0 and tests).
bool radial_allows(int64_t q_fm, int64_t k_fm, int64_t tpf, const RadialRule& rule);

// The shrunk grid as a mask over positions of `layout` (grid cells of frame-major blocks).
class RadialGridMask : public PairMask {
 public:
  RadialGridMask(const TokenLayout& layout, const RadialRule& rule);
  bool allowed(int64_t q, int64_t k) const override;
  const std::vector<char>& grid() const { return grid_; }

 private:
  const TokenLayout& layout_;
  int block_, nb_;
  std::vector<char> grid_;
};

// The unshrunk token rule over positions of `layout`.
class RadialTokenMask : public PairMask {
 public:
  RadialTokenMask(const TokenLayout& layout, const RadialRule& rule) : layout_(layout), rule_(rule) {}
  bool allowed(int64_t q, int64_t k) const override;

 private:
  const TokenLayout& layout_;
  RadialRule rule_;
};

// 3D variant, in tile units (tile = (tt, th, tw) tokens, usually tt = 1): frames at temporal
// distance dt <= 1 and the sink frame are kept whole; otherwise, with g = bitlen(dt), a window
// of n_a = max(1, round(tiles_a * decay / 2^(g-2))) tiles per spatial axis a (so the window's
// side halves with each doubling of dt), centred on the query's tile and clamped to the frame;
// frequency split when the undecayed window area (tiles_h * tiles_w / 4^(g-2) tiles) falls under
// one tile: the pair is kept only when dt % int(1 / area) == 0.
struct Radial3dRule {
  double decay = 1.0;
  TileShape tile{1, 8, 8};
  bool sink = true;
};

class Radial3dMask : public PairMask {
 public:
  Radial3dMask(const TokenLayout& layout, const Radial3dRule& rule);
  bool allowed(int64_t q, int64_t k) const override;

 private:
  const TokenLayout& layout_;
  Radial3dRule rule_;
  int tiles_h_, tiles_w_;
};

}  // namespace ditgen::attn
