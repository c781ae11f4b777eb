#include "vae/decoder.h"

#include <cstdint>

namespace ditgen {

Frames PixelDecoder::decode(const float* latent, const LatentShape& shape, int channels) const {
  Frames f;
  f.frames = shape.frames, f.height = shape.height, f.width = shape.width, f.channels = channels;
  const int64_t n = int64_t(shape.frames) * shape.height * shape.width * channels;
  f.data.resize(size_t(n));
  for (int64_t i = 0; i < n; ++i) {
    const float v = (latent[i] + 1.0f) * 127.5f;
    f.data[size_t(i)] = uint8_t(v <= 0.0f ? 0 : v >= 255.0f ? 255 : int(v + 0.5f));
  }
  return f;
}

}  // namespace ditgen
