#pragma once
// LatentShape: the geometry the sampler and the DiT work in, T x H x W (channels are the
// model's). For a pixel-space model it is the video itself; a VAE decoder maps it to a larger
// video (vae/decoder.h), so pixel sizes and latent sizes never share a type.
namespace ditgen {

struct LatentShape {
  int frames = 16, height = 64, width = 64;
  bool operator==(const LatentShape& o) const { return frames == o.frames && height == o.height && width == o.width; }
};

}  // namespace ditgen
