#pragma once
// A model family is a set of parts read from the weight file, not a fork of the DiT: the
// conditioner (what the user asks for -> context rows), the DiT (velocity), the decoder
// (latent -> frames) and the sampler defaults. load_model picks each part from the file.
#include <memory>
#include <string>

#include "cond/conditioner.h"
#include "dit/config.h"
#include "dit/model.h"
#include "dit/weights.h"
#include "vae/decoder.h"

namespace ditgen::pipeline {

// What a run uses when the user does not say otherwise (read from the weight file).
struct SamplerDefaults {
  int steps = 20;
  double cfg = 4.0;
  double shift = 3.0;
  int height = 64, width = 64;  // video size in pixels
};

struct Model {
  std::string family;                        // "labels" (the digits model) or "raw-context"
  std::unique_ptr<Conditioner> conditioner;  // nullptr: the DiT takes raw context no reader exists for
  std::unique_ptr<DiTModel> dit;
  std::unique_ptr<Decoder> decoder;
  SamplerDefaults defaults;
  const DiTConfig& config() const { return dit->config(); }
};

// The configuration of "builtin:tiny": random weights small enough for tests and smoke runs.
DiTConfig tiny_config();

// The parts of a model from its configuration and weights: class labels (num_classes > 0)
// condition through a LabelConditioner that takes the label tables out of `w`; the digits
// family works in pixel space. Throws std::invalid_argument for an invalid configuration.
Model assemble_model(const DiTConfig& cfg, DiTWeights w);

// An HDF5 weight file (read through load_weights_isolated), or "builtin:tiny" (tiny_config()
// with random weights, seed 1234).
Model load_model(const std::string& spec);

}  // namespace ditgen::pipeline
