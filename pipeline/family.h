#pragma once
// A model family is a set of parts read from the weight file, not a fork of the DiT: the
// conditioner (what the user asks for -> context rows), the DiT (velocity), the decoder
// (latent -> frames) and the sampler defaults. load_model picks each part from the file.
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "cond/conditioner.h"
#include "dit/config.h"
#include "dit/model.h"
#include "dit/weights.h"
#include "io/lora_file.h"
#include "vae/decoder.h"
#include "vae/tiling.h"

namespace ditgen::pipeline {

// What a run uses when the user does not say otherwise (read from the weight file).
struct SamplerDefaults {
  int steps = 20;
  double cfg = 4.0;
  double shift = 3.0;
  int frames = 16, height = 64, width = 64;  // video size in pixels
  // The DiT is conditioned on int(1000 sigma), as Wan's scheduler hands its model integer
  // timesteps; else on 1000 sigma.
  bool integer_timesteps = false;
};

struct Model {
  std::string family;                        // "labels" (the digits model), "raw-context" or "wan2.1-t2v"
  std::unique_ptr<Conditioner> conditioner;  // nullptr: the DiT takes raw context no reader exists for
  std::unique_ptr<DiTModel> dit;
  std::unique_ptr<Decoder> decoder;          // nullptr: no decoder file; a run's output is its latent
  std::string no_decoder_reason;             // why decoder is nullptr, for the user
  LatentGeometry geometry;                   // pixels <-> the sampler's latent
  std::string dtype = "float32";             // the linear layers' weights in memory: "float32" or "bf16"
  SamplerDefaults defaults;
  const DiTConfig& config() const { return dit->config(); }
};

// The configuration of "builtin:tiny": random weights small enough for tests and smoke runs.
DiTConfig tiny_config();

// The parts of a model from its configuration and weights: class labels (num_classes > 0)
// condition through a LabelConditioner that takes the label tables out of `w`; the digits
// family works in pixel space. Throws std::invalid_argument for an invalid configuration.
Model assemble_model(const DiTConfig& cfg, DiTWeights w);

// How a model is held in memory.
struct LoadOptions {
  // Wan2.1: the linear layers' weights in F32 or BF16; unset: BF16 where the CPU has the bf16
  // GEMM, else F32. (HDF5 models load as float32.)
  std::optional<DType> dtype;
  int64_t memory_limit_bytes = 0;  // refuse a model whose weights alone need more (0: memory available)
  vae::VaeTiling vae_tiling;       // Wan2.1: decode in tiles (off by default)
  std::vector<std::pair<std::string, double>> loras;  // LoRA files and scales, merged in order
};

// Reads each LoRA file (io/lora_file.h) against the model's linear layers and merges it into
// the weights (dit/lora.h), in order. Throws std::runtime_error / std::invalid_argument naming
// the file and the tensor that does not fit.
void apply_loras(DiTWeights& w, const DiTConfig& cfg, const std::vector<std::pair<std::string, double>>& loras);

// What the adapters were trained for (io::lora_training: attention spec, RIFLEx pair), over those
// with a non-zero scale; each unset when no adapter names it. Throws std::invalid_argument when
// two name different values (the caller must then be told which to use), std::runtime_error for
// an unreadable file.
io::LoraTraining adapters_training(const std::vector<std::pair<std::string, double>>& loras);

// A Wan2.1 folder or .safetensors file (pipeline/wan.h), an HDF5 weight file (read through
// load_weights_isolated), or "builtin:tiny" (tiny_config() with random weights, seed 1234).
Model load_model(const std::string& spec, const LoadOptions& options = {});

}  // namespace ditgen::pipeline
