#pragma once
// Spatial tiling of a VAE decode, for sizes whose full-frame activations do not fit: the latent is
// cut into overlapping tiles, each decoded on its own over all frames (the causal caches then hold
// one tile's frames), and neighbours are blended linearly across the band they share. Exact only
// where one tile covers the latent: a tile sees zero padding at its edges and its own pixels in
// the middle block's attention, and the blend hides what that changes (the seam error:
// docs/wan.md).
#include <string>
#include <vector>

namespace ditgen::vae {

struct VaeTiling {
  int size = 0;     // latent pixels along a tile's side; 0: no tiling
  int overlap = 0;  // latent pixels shared by neighbouring tiles, < size

  bool on() const { return size > 0; }
  // Throws std::invalid_argument naming the value: a size below 1, an overlap below 0 or not
  // below the size.
  void validate() const;
};

// One tile along one axis, in latent pixels.
struct TileSpan {
  int start = 0, length = 0;
  int shared_before = 0, shared_after = 0;  // with the previous and the next tile
};

// Tiles of `size` covering [0, length), `overlap` apart from their neighbours' ends; the last
// one ends at `length` (sharing more where the rest does not divide); one tile where size ≥ length.
std::vector<TileSpan> tile_spans(int length, const VaeTiling& tiling);

// Blend weight of output pixel `x` (0 .. scale·length - 1, counted from the tile's start): rising
// linearly across the band shared with the previous tile, falling across the next's, 1 between.
// Always > 0, so the normalised sum of the tiles covering a pixel is defined.
float tile_weight(const TileSpan& span, int x, int scale);

}  // namespace ditgen::vae
