#pragma once
// LoRA adapters merged into the DiT's linear layers when a model is loaded (--lora FILE[:SCALE]):
// W <- W + scale * (alpha / rank) * up · down, computed in float32 and stored back in the
// weight's own form (float32, bfloat16, or the packed bf16 of the GEMM, rounded to nearest even).
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "dit/config.h"
#include "dit/weights.h"

namespace ditgen {

struct LoraLayer {
  std::string module;       // the linear layer, release spelling ("blocks.0.self_attn.q")
  std::string source;       // the file's name for it, for messages
  int64_t rank = 0, in = 0, out = 0;
  std::vector<float> down;  // (rank, in)
  std::vector<float> up;    // (out, rank)
  double alpha = 0;         // the product is scaled by alpha / rank (alpha = rank when absent)
};

struct LoraAdapter {
  std::string path;
  double scale = 1.0;
  std::vector<LoraLayer> layers;
};

// --lora: "FILE" (scale 1) or "FILE:SCALE" with a finite SCALE; a path that itself holds ':'
// needs the scale written. Throws std::invalid_argument naming the text.
std::pair<std::string, double> parse_lora_flag(const std::string& text);

// The model's linear layers by module name (release spelling), in DiTWeights::linears() order.
std::vector<std::pair<std::string, LinearWeights*>> named_linears(DiTWeights& w, const DiTConfig& cfg);

// Merges every layer of the adapter. Throws std::invalid_argument naming the file and the
// tensor when a module is not a linear layer of the model or its shapes differ from the layer's.
void merge_lora(DiTWeights& w, const DiTConfig& cfg, const LoraAdapter& adapter);

}  // namespace ditgen
