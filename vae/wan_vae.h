#pragma once
// Wan2.1's VAE (the official `vae.py`: docs/wan-vae-reference.md): the decoder behind the Decoder
// seam (latents to frames) and the encoder (frames to latents), each a stream of layers run one
// frame at a time (vae/wan_layers.h). Widths, depth and the kinds of resampling come from the
// weight file (io/wan_vae.h), so a narrow test VAE of the same structure runs the same code.
#include <functional>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "vae/decoder.h"
#include "vae/tiling.h"
#include "vae/wan_layers.h"

namespace ditgen::vae {

// A causal conv, with RMS_norm + SiLU in front where `gamma` is set (the heads).
struct ConvLayer {
  std::vector<float> gamma;  // (Cin) or empty
  std::unique_ptr<CausalConv> conv;
  Fmap forward(Fmap x);
};

using Layer = std::variant<ConvLayer, ResidualBlock, AttentionBlock, Upsample, Downsample>;

// A chain of layers fed one frame at a time; a layer may give 0, 1 or 2 frames for each.
class LayerStream {
 public:
  using Sink = std::function<void(Fmap&&)>;
  std::vector<Layer> layers;
  void push(Fmap x, const Sink& sink) { run(0, std::move(x), sink); }
  void reset();
  int64_t weight_bytes() const;
  // Pack every convolution's weights for the bf16 GEMM.
  void pack_bf16();

 private:
  void run(size_t i, Fmap x, const Sink& sink);
};

// Wan2.1's published per-channel statistics of its 16 latent channels (`WanVAE` in vae.py):
// the DiT works in (z - mean) / std.
const std::vector<float>& wan21_latents_mean();
const std::vector<float>& wan21_latents_std();

class WanVae : public Decoder {
 public:
  int z_dim = 16;
  std::vector<float> mean, std;  // (z_dim): the latent normalisation
  ConvWeights post_quant;        // "conv2": (Z, Z, 1, 1, 1), before the decoder
  ConvWeights quant;             // "conv1": (2Z, 2Z, 1, 1, 1), after the encoder; absent without an encoder
  // The layers hold the causal caches of the call running (reset when one starts): one decode or
  // encode at a time per object.
  mutable LayerStream decoder, encoder;  // encoder: empty when the file has none
  VaeTiling tiling;                      // decode() in tiles where the latent is larger than one

  std::string name() const override { return "wan2.1-vae"; }
  // latent: (T, H, W, Z) normalised latents (the DiT's output) of `shape`; 1 + 4 (T - 1) frames of
  // 8 H x 8 W RGB, each value clamp(x, -1, 1) mapped to trunc((x + 1) / 2 · 255) as Wan's video
  // writer does; with `tiling` on, tile by tile (vae/tiling.h). Throws std::invalid_argument for a
  // channel count other than z_dim.
  Frames decode(const float* latent, const LatentShape& shape, int channels) const override;
  // The same frames in float32, [-1, 1] unclamped, as (8H, 8W, 3), handed to `sink` in order.
  void decode_stream(const float* latent, const LatentShape& shape, const LayerStream::Sink& sink) const;
  // video: frames of (H, W, 3) in [-1, 1], 1 + 4k of them, sides multiples of 8; the normalised
  // mean of the posterior, (T', H/8, W/8, Z) with T' = 1 + k.
  std::vector<float> encode(const std::vector<Fmap>& video, LatentShape* shape) const;
  bool has_encoder() const { return !encoder.layers.empty(); }
  int64_t weight_bytes() const;
  void pack_bf16();

 private:
  // The tiled decode: each tile's float frames summed with their blend weights, then normalised.
  Frames decode_tiles(const float* latent, const LatentShape& shape) const;
};

}  // namespace ditgen::vae
