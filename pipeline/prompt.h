#pragma once
// Prompts to Wan2.1's conditioning: the folder's umT5 tokenizer (cond/umt5_tokenizer.h) and
// encoder (cond/umt5.h) run on the prompt and the negative prompt, the encoder loaded, run and
// released before the DiT is read (so a run's peak memory is the larger of the two stages, not
// their sum), and the states cached on disk so that a second run with the same prompts skips the
// encoder.
#include <optional>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/tensor.h"

namespace ditgen::pipeline {

// Wan2.1's default negative prompt (wan/configs/shared_config.py, sample_neg_prompt).
const std::string& wan_default_negative_prompt();

struct TextEncoderFiles {
  std::string encoder;    // models_t5_umt5-xxl-enc-bf16.safetensors
  std::string tokenizer;  // google/umt5-xxl/spiece.model
};

// The text encoder of a Wan2.1 model folder (or of the folder holding the DiT file given).
// Throws std::runtime_error naming what was looked for: the .pth alone (convert it with
// tools/wan/convert_pth.py), a diffusers-format text_encoder/ (not read), nothing.
TextEncoderFiles locate_text_encoder(const std::string& model);

struct PromptOptions {
  std::string model;                           // model folder (or its DiT file)
  std::string prompt;
  std::optional<std::string> negative_prompt;  // unset: Wan's default
  std::optional<DType> dtype;                  // the encoder's GEMM; unset: bf16 where the CPU has it
  std::string cache_dir;                       // "" : no cache
};

struct EncodedPrompts {
  Tensor prompt, negative_prompt;              // (L, D) float32 each: one row per real token
  int64_t prompt_tokens = 0, negative_tokens = 0;
  std::vector<std::string> warnings;           // truncation, a cache that could not be written
  bool from_cache = false;
  std::string cache_file;                      // read or written; "" without a cache
  double seconds = 0;                          // tokenize + encode (or the cache read)
  std::string dtype;                           // "bf16" or "float32"
};

// Throws std::invalid_argument for a prompt that is not UTF-8 or a dtype this CPU cannot run,
// std::runtime_error for files that are missing or do not match their configuration.
EncodedPrompts encode_prompts(const PromptOptions& options);

// The cache folder when --prompt-cache is not given: $XDG_CACHE_HOME/ditgen/prompts, else
// $HOME/.cache/ditgen/prompts, else "" (no cache).
std::string default_prompt_cache_dir();

// --context's format: tensors "prompt" and "negative_prompt", float32 (L, D), atomically.
void write_context_file(const std::string& path, const EncodedPrompts& e, bool overwrite);

}  // namespace ditgen::pipeline
