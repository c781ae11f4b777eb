#pragma once
// The Wan2.1 DiT from its release safetensors: the original names (`blocks.N.self_attn.q.weight`,
// `text_embedding.0.weight`, `head.head.weight`, ...; the same names DiTWeights uses) or the
// diffusers-format names (`blocks.N.attn1.to_q.weight`, `condition_embedder.*`, `proj_out`,
// `scale_shift_table`, ...). Widths, depth and patch come from the tensors' shapes; the head
// count and text length are not stored in the weights and come from the model's config.json.
#include <string>

#include "io/weights_h5.h"

namespace ditgen::io {

// What a Wan2.1 config.json holds beyond the weights' shapes.
struct WanDiTSettings {
  int num_heads = 0;     // config.json "num_heads" (12 for 1.3B, 40 for 14B)
  int text_len = 512;    // config.json "text_len": context rows after padding
  double eps = 1e-6;     // config.json "eps"
};

// Reads "num_heads", "text_len" and "eps" of a Wan2.1 config.json (original or diffusers
// spelling: "num_attention_heads"). Throws std::runtime_error naming the file and the field.
WanDiTSettings read_wan_config(const std::string& path);

// Loads the DiT of `path` (safetensors) as float32 weights: the config (num_classes = 0: raw
// context of text_len rows; Wan's sampler defaults: shift 5, 50 steps, guidance 5, 480 x 832)
// and every tensor, each checked against the shape the config implies. Throws
// std::runtime_error naming the file and the tensor: a missing or mis-shaped tensor, a head
// count that does not divide the width.
LoadedModel load_wan_dit(const std::string& path, const WanDiTSettings& settings);

}  // namespace ditgen::io
