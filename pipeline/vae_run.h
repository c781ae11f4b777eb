#pragma once
// `ditgen vae`: a Wan2.1 VAE on its own. Decode saved latents (what `generate --latents-out`
// writes) into frames, encode frames into latents, or both in turn to measure the round trip.
#include <optional>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/frames.h"
#include "core/shape.h"
#include "vae/tiling.h"

namespace ditgen::pipeline {

struct VaeRunOptions {
  std::string model;    // a model folder or the VAE's .safetensors file
  std::string decode;   // latents file to decode; empty with `encode`: decode what was encoded, if `roundtrip`
  std::string encode;   // video, PNG or PNG folder to encode
  bool roundtrip = false;
  std::optional<DType> dtype;  // unset: bf16 where the CPU has the bf16 GEMM
  vae::VaeTiling tiling;       // decode in tiles (off by default)
};

struct VaeRunResult {
  std::vector<float> latents;  // (T, H, W, C): read (--decode) or encoded (--encode)
  LatentShape shape;
  int channels = 0;
  Frames frames;               // decoded (empty for an encode alone)
  double encode_seconds = 0, decode_seconds = 0;
  std::optional<double> roundtrip_psnr_db;  // 8-bit frames decoded against the input
  std::string dtype;
  double weights_mb = 0;
};

// Throws std::invalid_argument for a bad combination or input (a latent of the wrong channel
// count, a video not 1 + 4k frames or with sides not multiples of 8), std::runtime_error for
// files that cannot be read.
VaeRunResult run_vae(const VaeRunOptions& opt);

}  // namespace ditgen::pipeline
