#pragma once
// The Wan2.1 DiT from its release safetensors: the original names (`blocks.N.self_attn.q.weight`,
// `text_embedding.0.weight`, `head.head.weight`, ...; the same names DiTWeights uses) or the
// diffusers-format names (`blocks.N.attn1.to_q.weight`, `condition_embedder.*`, `proj_out`,
// `scale_shift_table`, ...). Widths, depth and patch come from the tensors' shapes; the head
// count and text length are not stored in the weights and come from the model's config.json.
#include <string>

#include "core/dtype.h"
#include "io/safetensors_set.h"
#include "io/weights_h5.h"

namespace ditgen::io {

// What a Wan2.1 config.json holds beyond the weights' shapes.
struct WanDiTSettings {
  int num_heads = 0;     // config.json "num_heads" (12 for 1.3B, 40 for 14B)
  int text_len = 512;    // config.json "text_len": context rows after padding
  double eps = 1e-6;     // config.json "eps"
  // Widths and depth where config.json states them (0: not stated); checked against the shapes.
  int dim = 0, ffn_dim = 0, num_layers = 0;
  DType dtype = DType::F32;  // the linear layers' weights in memory: F32 or BF16 (others stay F32)
};

// Reads "num_heads", "text_len", "eps", "dim", "ffn_dim" and "num_layers" of a Wan2.1
// config.json (original or diffusers spelling: "num_attention_heads" x "attention_head_dim").
// Throws std::runtime_error naming the file and the field.
WanDiTSettings read_wan_config(const std::string& path);

// The diffusers spelling of a release tensor or module name ("blocks.0.self_attn.q.weight" ->
// "blocks.0.attn1.to_q.weight"); names the map does not cover come back unchanged.
std::string wan_diffusers_name(const std::string& release);

// Where a model's DiT is: `model` is a folder (the original release: config.json beside
// diffusion_pytorch_model.safetensors or its sharded index; a diffusers folder: the same in
// transformer/) or one .safetensors file (its config.json beside it).
struct WanDiTFiles {
  std::string config;   // config.json
  std::string weights;  // the .safetensors file, or the .safetensors.index.json of the shards
};
// Throws std::runtime_error naming what was looked for.
WanDiTFiles locate_wan_dit(const std::string& model);
SafetensorsSet open_wan_dit(const WanDiTFiles& files);

// The config from the tensors' shapes and `settings` (num_classes = 0: raw context of text_len
// rows; Wan's sampler defaults: shift 5, 50 steps, guidance 5, 480 x 832). Reads no tensor data.
DiTConfig wan_dit_config(const SafetensorsSet& f, const WanDiTSettings& settings);
// Bytes the weights of `cfg` take in memory with `dtype` for the linear layers.
int64_t wan_dit_weight_bytes(const DiTConfig& cfg, DType dtype);

// Loads every tensor, each checked against the shape the config implies; the linear layers'
// weights in settings.dtype (converted from the file's dtype), the rest float32. Throws
// std::runtime_error naming the file and the tensor: a missing or mis-shaped tensor, a head
// count that does not divide the width, a config.json that disagrees with the shapes.
LoadedModel load_wan_dit(const SafetensorsSet& f, const WanDiTSettings& settings);
// The config and the tensor table (names as in the file, dtypes as stored) without reading any
// tensor's data; the same checks of names and shapes as load_wan_dit.
LoadedModel inspect_wan_dit(const SafetensorsSet& f, const WanDiTSettings& settings);
LoadedModel load_wan_dit(const std::string& path, const WanDiTSettings& settings);

}  // namespace ditgen::io
