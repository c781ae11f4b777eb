#pragma once
// Test helper for the model fixtures: a model assembled from random weights as load_model
// would, and the label context rows of its conditioner.
#include <cstdint>
#include <vector>

#include "cond/labels.h"
#include "pipeline/family.h"

namespace ditgen::test {

// The tests' model: builtin:tiny's structure (pipeline::tiny_config) at half its width, 16 x 16
// frames, 2 steps. Tests change only the fields they are about.
inline DiTConfig small_config() {
  DiTConfig c = pipeline::tiny_config();
  c.dim = 32;
  c.ffn_dim = 48;
  c.freq_dim = 16;
  c.ctx_dim = 16;
  c.frame_height = c.frame_width = 16;
  c.sample_steps = 2;
  return c;
}

inline pipeline::Model random_model(const DiTConfig& c, uint64_t seed) {
  return pipeline::assemble_model(c, DiTWeights::random(c, seed));
}

// (B, L, E) context of label lists (entries 0..K, K the null label).
inline Tensor label_rows(const pipeline::Model& m, const std::vector<std::vector<int>>& labels) {
  return dynamic_cast<const LabelConditioner&>(*m.conditioner).rows(labels);
}

}  // namespace ditgen::test
