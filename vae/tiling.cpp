#include "vae/tiling.h"

#include <algorithm>
#include <stdexcept>

namespace ditgen::vae {

void VaeTiling::validate() const {
  if (size < 1) throw std::invalid_argument("VAE tile of " + std::to_string(size) + " latent pixels: expected at least 1");
  if (overlap < 0 || overlap >= size)
    throw std::invalid_argument("VAE tile overlap of " + std::to_string(overlap) + " latent pixels: expected 0 to " +
                                std::to_string(size - 1) + " (less than the tile's " + std::to_string(size) + ")");
}

std::vector<TileSpan> tile_spans(int length, const VaeTiling& tiling) {
  std::vector<TileSpan> spans;
  if (length <= tiling.size) return {TileSpan{0, length, 0, 0}};
  const int stride = tiling.size - tiling.overlap;
  for (int start = 0;; start += stride) {
    const int s = std::min(start, length - tiling.size);
    spans.push_back({s, tiling.size, 0, 0});
    if (s + tiling.size >= length) break;
  }
  for (size_t i = 1; i < spans.size(); ++i) {
    const int shared = spans[i - 1].start + spans[i - 1].length - spans[i].start;
    spans[i - 1].shared_after = shared;
    spans[i].shared_before = shared;
  }
  return spans;
}

float tile_weight(const TileSpan& span, int x, int scale) {
  // Pixel centres: the ramp over a band of n pixels takes the values (i + 0.5) / n, so the two
  // tiles sharing the band sum to 1 at every one of its pixels.
  const float pos = float(x) + 0.5f;
  float w = 1.0f;
  if (span.shared_before > 0) w = std::min(w, pos / float(span.shared_before * scale));
  if (span.shared_after > 0) w = std::min(w, (float(span.length * scale) - pos) / float(span.shared_after * scale));
  return w;
}

}  // namespace ditgen::vae
