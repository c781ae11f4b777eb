#pragma once
// LoRA adapter files (safetensors) in the common layouts, read into dit/lora.h's LoraAdapter:
//  - PEFT and this project's: MODULE.lora_A.weight (rank, in), MODULE.lora_B.weight (out, rank),
//    optionally MODULE.alpha;
//  - kohya: MODULE.lora_down.weight, MODULE.lora_up.weight, MODULE.alpha, with MODULE in '.' or
//    '_' spelling (lora_unet_blocks_0_self_attn_q);
// MODULE in Wan2.1's release spelling (blocks.0.self_attn.q) or diffusers' (blocks.0.attn1.to_q),
// after any of the prefixes diffusion_model., model.diffusion_model., base_model.model.,
// transformer., model., lora_unet_, lora_transformer_. F32, BF16 and F16 tensors are read.
#include <optional>
#include <string>
#include <vector>

#include "dit/lora.h"

namespace ditgen::io {

// `modules`: the model's linear layers (release spelling). Throws std::runtime_error naming the
// file and the tensor for: an unreadable file, a tensor of no known layout, a module that is
// none of `modules`, a down without its up (or the reverse), ranks or shapes that disagree, an
// alpha that is not one finite value, an adapter with no layer.
LoraAdapter read_lora(const std::string& path, double scale, const std::vector<std::string>& modules);

// What an adapter was trained for, from its metadata (written by tools/train/train.py): the
// engine's attention spec ("ditgen.attention", --adapter-attn) and the RIFLEx pair
// ("ditgen.riflex", --riflex), each unset when the file does not say. Throws std::runtime_error
// for an unreadable file or a "ditgen.riflex" that is not a positive integer.
struct LoraTraining {
  std::optional<std::string> attention;
  std::optional<int> riflex;
};
LoraTraining lora_training(const std::string& path);

}  // namespace ditgen::io
