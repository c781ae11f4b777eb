#pragma once
// Frames: decoded 8-bit video, what a decoder produces and the writers of io/ consume.
#include <cstdint>
#include <vector>

namespace ditgen {

struct Frames {
  int frames = 0, height = 0, width = 0, channels = 1;
  std::vector<uint8_t> data;  // (T, H, W, C)
  const uint8_t* frame(int t) const { return data.data() + size_t(t) * height * width * channels; }
};

}  // namespace ditgen
