#pragma once
// 3D sliding window in tile units with clamped centres (Sliding Tile Attention, NATTEN), plus
// global tokens: the first frame as a sink, and optionally one pooled summary token per tile.
#include <cstdint>
#include <vector>

#include "attention/mask/mask.h"
#include "attention/mask/reorder.h"

namespace ditgen::attn {

struct WindowRule {
  TileShape tile{4, 4, 4};    // tokens per tile
  TileShape window{3, 3, 3};  // tiles per window, per axis
  bool sink = true;           // every query sees the first frame
};

// Key tiles [start, start + n) of the window of query tile qt on one axis of `tiles` tiles:
// n = min(k, tiles), start = clamp(qt - k/2, 0, tiles - n). Odd k is centred; even k takes
// k/2 tiles before and k/2 - 1 after (NATTEN); border windows shift inward and stay full size.
inline int window_start(int qt, int k, int tiles) {
  const int n = k < tiles ? k : tiles;
  int s = qt - k / 2;
  if (s > tiles - n) s = tiles - n;
  if (s < 0) s = 0;
  return s;
}

class WindowMask : public PairMask {
 public:
  WindowMask(const TokenLayout& layout, const WindowRule& rule);
  bool allowed(int64_t q, int64_t k) const override;
  // Is key tile (kt, kh, kw) inside the window of the query at position q?
  bool tile_in_window(int64_t q, int kt, int kh, int kw) const;
  int tiles_t() const { return nt_; }
  int tiles_h() const { return nh_; }
  int tiles_w() const { return nw_; }
  int num_tiles() const { return nt_ * nh_ * nw_; }
  // Tile index (frame-major over tiles) of the token at position i.
  int tile_of(int64_t i) const;

 private:
  const TokenLayout& layout_;
  WindowRule rule_;
  int nt_, nh_, nw_;
};

// Summary-token extension: positions N .. N+M-1 are one pooled token per tile (M tiles, tile
// index order). Real queries see their window, the sink and the summary tokens of every tile
// outside their window; summary query rows (scratch, discarded) see only themselves.
class WindowSummaryMask : public PairMask {
 public:
  explicit WindowSummaryMask(const WindowMask& window, int64_t tokens) : w_(window), n_(tokens) {}
  bool allowed(int64_t q, int64_t k) const override;

 private:
  const WindowMask& w_;
  int64_t n_;
};

}  // namespace ditgen::attn
