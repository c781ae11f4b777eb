#pragma once
// Decoder seam: the sampler's latent in, 8-bit frames out. A model family names its decoder
// (pipeline/family.h): pixel-space models use PixelDecoder; a VAE decoder implements the same
// interface for its family's LatentGeometry (core/shape.h; e.g. 4x fewer frames, 8x smaller sides).
#include <string>

#include "core/frames.h"
#include "core/shape.h"

namespace ditgen {

class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual std::string name() const = 0;
  // latent: (T, H, W, C) sampler output of `shape` with `channels` channels.
  virtual Frames decode(const float* latent, const LatentShape& shape, int channels) const = 0;
};

// Pixel space: the latent is the video; values in [-1, 1] map to 0..255 (rounded, clamped).
class PixelDecoder : public Decoder {
 public:
  std::string name() const override { return "pixels"; }
  Frames decode(const float* latent, const LatentShape& shape, int channels) const override;
};

}  // namespace ditgen
