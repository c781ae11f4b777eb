#pragma once
// LatentShape: the geometry the sampler and the DiT work in, T x H x W (channels are the
// model's). For a pixel-space model it is the video itself; a VAE maps it to a larger video, so
// pixel sizes and latent sizes never share a type. LatentGeometry is that map.
#include <stdexcept>
#include <string>
#include <tuple>

namespace ditgen {

struct LatentShape {
  int frames = 16, height = 64, width = 64;
  bool operator==(const LatentShape& o) const { return frames == o.frames && height == o.height && width == o.width; }
};

// Pixels <-> latent of a model family: `space` pixels a latent cell on each side; `time` frames
// a latent frame, and with `causal_first` the first frame alone (Wan's VAE: 1 + 4k frames give
// 1 + k latent frames). The identity (1, 1, false) is pixel space.
struct LatentGeometry {
  int time = 1, space = 1;
  bool causal_first = false;

  // The latent of a video of frames x height x width pixels. Throws std::invalid_argument naming
  // a size this geometry cannot produce (`align`: the DiT's patch on top, so that sides are
  // multiples of space x align).
  LatentShape latent_shape(int frames, int height, int width, int align_h = 1, int align_w = 1) const {
    if (time == 1 && space == 1 && !causal_first) return {frames, height, width};  // the DiT checks its patch
    auto need = [](const std::string& what, int v, const std::string& expected) {
      throw std::invalid_argument(what + " " + std::to_string(v) + " is out of range: expected " + expected);
    };
    if (frames < 1) need("frames", frames, "at least 1");
    if (causal_first ? (frames - 1) % time != 0 : frames % time != 0)
      need("frames", frames,
           causal_first ? "1 + " + std::to_string(time) + "k (e.g. 1, " + std::to_string(1 + time) + ", " +
                              std::to_string(1 + 20 * time) + ")"
                        : "a multiple of " + std::to_string(time));
    for (const auto& [what, v, align] : {std::tuple{"height", height, align_h}, std::tuple{"width", width, align_w}})
      if (v < 1 || v % (space * align) != 0) need(what, v, "a positive multiple of " + std::to_string(space * align));
    return {causal_first ? 1 + (frames - 1) / time : frames / time, height / space, width / space};
  }
  // The video a latent decodes to.
  int video_frames(int latent_frames) const { return causal_first ? 1 + (latent_frames - 1) * time : latent_frames * time; }
};

}  // namespace ditgen
