#pragma once
// Decoder seam: turns the sampler's output into pixels. The shipped model works in pixel
// space, so the decoder only maps [-1, 1] to 8 bits; a VAE decoder would implement the same
// interface and change the video shape it reports.
#include <cstdint>
#include <vector>

#include "dit/config.h"

namespace ditgen {

class Decoder {
 public:
  virtual ~Decoder() = default;
  // latent: (T, H, W, C) sampler output; frames: (T', H', W', C') 8-bit, shape returned.
  virtual VideoShape decode(const float* latent, const VideoShape& shape, int channels,
                            std::vector<uint8_t>& frames) const = 0;
};

class PixelDecoder : public Decoder {
 public:
  VideoShape decode(const float* latent, const VideoShape& shape, int channels,
                    std::vector<uint8_t>& frames) const override {
    const int64_t n = int64_t(shape.frames) * shape.height * shape.width * channels;
    frames.resize(size_t(n));
    for (int64_t i = 0; i < n; ++i) {
      const float v = (latent[i] + 1.0f) * 127.5f;
      frames[size_t(i)] = uint8_t(v <= 0.0f ? 0 : v >= 255.0f ? 255 : int(v + 0.5f));
    }
    return shape;
  }
};

}  // namespace ditgen
