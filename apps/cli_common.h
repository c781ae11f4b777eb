#pragma once
// Helpers shared by subcommands: option parsing with messages that name the bad value, the
// common generation flags, JSON output written atomically.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <array>
#include <optional>
#include <string>
#include <vector>

#include "attention/kernel/kernel.h"
#include "dit/lora.h"
#include "io/atomic_file.h"
#include "pipeline/generate.h"
#include "pipeline/memory.h"
#include "pipeline/options.h"
#include "pipeline/prompt.h"
#include "sampler/step_cache.h"

namespace ditgen::app {

// The attention of `ditgen generate` when --attn is not given: the fastest configuration that
// held 30 dB and SSIM 0.95 against dense in all five cases of bench/RESULTS.md (16 frames,
// shipped model). It attends densely wherever the frame count is 1 or 2.
inline constexpr const char* kDefaultGenerateAttn = "radial3d:decay=0.5,dense_steps=0.4,refresh=4";
// The default with the run's --isa (`run_isa`): where that is auto and the CPU has AVX512-BF16,
// kDefaultGenerateAttn on the bf16 kernel, which with the default cache holds the issue's
// training-free bar at 16 frames (median 30.9 dB, worst 28.4, SSIM >= 0.962) at 2.18x, against
// 1.53x in float32 (bench/RESULTS.md, "bf16 attention with the step cache").
std::string default_generate_attn(attn::Isa run_isa);

// The step cache of `ditgen generate` when --cache is not given: with the default attention it
// held 30.9 dB and SSIM 0.974 against dense in all five cases (bench/RESULTS.md, "Step
// caching"), 1.33x faster than the attention alone. The first half of the steps always runs.
inline constexpr const char* kDefaultGenerateCache = "easy:thresh=0.05,warmup=0.5,reuse=output";

// "3,7" -> {3, 7}; throws UsageError naming the text.
std::vector<int> parse_int_list(const std::string& text, const char* what);

// score-digits --labels: "a,b" with a and b single digits 0-9; throws UsageError naming the text.
std::array<int, 2> parse_labels(const std::string& text);

// The shipped digit classifier, relative to the repository root (or the install prefix).
inline constexpr const char* kShippedClassifier = "models/digits-classifier.yml.gz";

// The shipped classifier looked up in the working directory and then next to the executable
// (build tree or installed tree); nullopt where it is in none of them.
std::optional<std::string> find_shipped_classifier();

// Whether the digit classifier scores this model's videos: a digits-style weight file (ten
// classes, two label tokens), read from its config alone (no weights are loaded).
bool scores_digits(const std::string& model_spec);

// --classifier as given (UsageError if it is not a file), else the shipped one (UsageError
// naming where it was looked for).
std::string find_classifier(const std::string& given);

// Sets OpenMP's thread count (0 = leave the default); throws UsageError when out of range.
void set_threads(int threads);

// --dtype: "auto" (unset), "bf16", "float32"; throws UsageError naming anything else.
std::optional<DType> parse_dtype_flag(const std::string& text);

// --cache: a step-cache spec (sampler/step_cache.h); throws UsageError naming the text.
sampler::CacheSpec parse_cache_flag(const std::string& text);

// --prompt-cache: "" (not given) for the default folder, "off" for none, else the folder.
std::string prompt_cache_dir(const std::string& flag);

// What a run reports about its prompts (tokens, cache, seconds).
nlohmann::json prompt_json(const pipeline::EncodedPrompts& e);

// Flags shared by generate, compare, attnmap, calibrate.
struct GenerationFlags {
  std::string model;
  std::optional<std::string> labels;  // unset: "3,7" for a label model
  std::optional<int> frames;          // unset: the model's default
  std::string context, noise;         // text-states models: --context (required), --noise (optional)
  std::string dtype = "auto";
  std::optional<int> height, width;  // unset: the model's default size
  std::optional<int> steps;          // unset: the model's default
  std::optional<double> cfg;         // unset: the model's default
  std::optional<std::string> riflex;  // K or "off"; unset: the adapters' (none without one)
  uint64_t seed = 0;
  std::string solver = "unipc";
  int threads = 0;
  std::string isa = "auto";
  std::string gemm = "auto";
  std::optional<double> max_memory_mb;  // unset: the memory available
  std::optional<int> vae_tile, vae_tile_overlap;  // pixels; unset: no tiling
  std::optional<std::string> prompt, negative_prompt;  // Wan2.1: encoded by the folder's umT5
  std::string prompt_cache;                           // "" default folder, "off", or a folder
  std::vector<std::string> lora;                      // --lora FILE[:SCALE], in order
  // The prompts' states, encoded by load_model() before the DiT is read.
  mutable std::optional<pipeline::EncodedPrompts> encoded;
  mutable std::optional<io::LoraTraining> adapters_;

  void add(CLI::App& sub);
  // --dtype (and --max-memory for the weights) as load options; throws UsageError.
  pipeline::LoadOptions load_options() const;
  // What the --lora adapters were trained for (pipeline::adapters_training), read once; adapters
  // that disagree are a UsageError.
  const io::LoraTraining& adapters() const;
  // load_model with load_options(); a bad dtype for this model or CPU is a UsageError. With
  // --prompt the text encoder runs first (and is released) and `encoded` holds its states.
  pipeline::Model load_model() const;
  // Applies the model's defaults where a flag was not given and checks every value given;
  // throws UsageError naming the bad value. Sets the process-wide GEMM (--gemm).
  pipeline::GenerateOptions options(const pipeline::Model& model) const;
  // --isa and --threads as kernel options, refusing a path this CPU cannot run (UsageError).
  attn::KernelOptions kernel_options() const;
};

// Checks before a long run that `path` can be written (directory exists and is writable,
// extension known, file absent unless overwrite); throws UsageError otherwise.
void check_output_path(const std::string& path, bool overwrite, bool video);

// Writes JSON atomically.
void write_json(const std::string& path, const nlohmann::json& j, bool overwrite, io::OutputBatch* batch = nullptr);

}  // namespace ditgen::app
