#include "apps/cli_common.h"

#include "dit/gemm.h"

#include <omp.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <tuple>

#include "apps/commands.h"
#include "core/numbers.h"
#include "io/atomic_file.h"
#include "io/video.h"
#include "io/weights_h5.h"
#include "pipeline/options.h"
#include "pipeline/wan.h"

namespace fs = std::filesystem;

namespace ditgen::app {

std::string default_generate_attn(attn::Isa run_isa) {
  if (run_isa == attn::Isa::Auto && attn::isa_supported(attn::Isa::Avx512Bf16))
    return std::string(kDefaultGenerateAttn) + ",isa=avx512bf16";
  return kDefaultGenerateAttn;
}

std::vector<int> parse_int_list(const std::string& text, const char* what) {
  std::vector<int> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    const auto v = parse_int(item);
    if (!v) throw UsageError(std::string(what) + " '" + text + "': '" + item + "' is not an integer");
    out.push_back(*v);
  }
  // getline yields no item after a trailing comma: refuse it as the empty item it is.
  if (!text.empty() && text.back() == ',')
    throw UsageError(std::string(what) + " '" + text + "': '' is not an integer");
  if (out.empty()) throw UsageError(std::string(what) + " is empty");
  return out;
}

void set_threads(int threads) {
  if (threads < 0 || threads > 1024) throw UsageError("--threads " + std::to_string(threads) + " is out of range: expected 0 (all) to 1024");
  if (threads > 0) omp_set_num_threads(threads);
}

std::optional<std::string> find_shipped_classifier() {
  std::error_code ec;
  std::vector<fs::path> tried = {fs::path(kShippedClassifier)};
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec)
    for (const char* rel : {"..", "../..", "../share/ditgen"}) tried.push_back(exe.parent_path() / rel / kShippedClassifier);
  for (const auto& p : tried)
    if (fs::is_regular_file(p, ec)) return p.lexically_normal().string();
  return std::nullopt;
}

bool scores_digits(const std::string& model_spec) {
  if (pipeline::is_wan_spec(model_spec)) return false;
  const DiTConfig c = model_spec == "builtin:tiny" ? pipeline::tiny_config() : io::inspect_weights(model_spec).config;
  return c.num_classes == 10 && c.ctx_len == 2;
}

std::string find_classifier(const std::string& given) {
  std::error_code ec;
  if (!given.empty()) {
    if (!fs::is_regular_file(given, ec)) throw UsageError("classifier '" + given + "' not found");
    return given;
  }
  if (auto p = find_shipped_classifier()) return *p;
  throw UsageError(std::string("the shipped digit classifier (") + kShippedClassifier +
                   ") was not found in the working directory nor next to the ditgen binary; run from the repository "
                   "root or pass --classifier (ditgen train-classifier makes one)");
}

namespace {
std::string num(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}
}  // namespace

void GenerationFlags::add(CLI::App& sub) {
  sub.add_option("--model", model,
                 "Weight file (HDF5), builtin:tiny, or a Wan2.1 model folder or DiT .safetensors file (config.json beside it)")
      ->required();
  sub.add_option("--lora", lora,
                 "LoRA adapter FILE[:SCALE] (.safetensors; PEFT lora_A/lora_B or kohya lora_down/lora_up with alpha), "
                 "merged into the weights at load; repeatable, applied in order (docs/lora.md)");
  sub.add_option("--labels", labels, "Condition of a label model: comma-separated class labels (default 3,7 for the digits model)");
  sub.add_option("--prompt", prompt, "Wan2.1: the prompt, encoded by the model folder's umT5 text encoder (or give --context)");
  sub.add_option("--negative-prompt", negative_prompt, "Wan2.1 with --prompt: the negative prompt of guidance (default: Wan2.1's)");
  sub.add_option("--prompt-cache", prompt_cache,
                 "Folder of cached prompt states, so a repeated prompt skips the encoder, or 'off' (default: ~/.cache/ditgen/prompts)");
  sub.add_option("--context", context,
                 "Wan2.1: text-encoder states, a .safetensors with tensors prompt and negative_prompt, each [tokens, 4096]");
  sub.add_option("--noise", noise,
                 "Wan2.1: start from these latents (.safetensors, tensor noise [16, 1 + (frames - 1)/4, height/8, width/8]) "
                 "instead of seeded noise");
  sub.add_option("--dtype", dtype,
                 "Wan2.1 weights and GEMM inputs: bf16 or float32 (auto: bf16 where the CPU has AVX-512 BF16)");
  sub.add_option("--frames", frames, "Frames (1 = an image; Wan2.1: 1 + 4k; default: the model's)");
  sub.add_option("--height", height, "Height in pixels (default: the model's)");
  sub.add_option("--width", width, "Width in pixels (default: the model's)");
  sub.add_option("--steps", steps, "Sampling steps (default: the model's)");
  sub.add_option("--cfg", cfg, "Classifier-free guidance scale (1 = off; default: the model's)");
  sub.add_option("--riflex", riflex,
                 "RIFLEx temporal extrapolation: the temporal rotary pair K (1-based) turns at 0.9*2pi per video, "
                 "for videos longer than the model was trained on (docs/length-extension.md); 'off' for none "
                 "(default: the --lora adapters' pair, else none)");
  // CLI11 reads "-1" into a uint64_t as 2^64-1: refuse negative seeds instead of wrapping.
  sub.add_option("--seed", seed, "Noise seed (0 to 2^64-1)")
      ->check(CLI::Validator(
          [](std::string& v) {
            return v.find('-') == std::string::npos ? std::string() : v + " is out of range: expected 0 to 2^64-1";
          },
          "UINT64"));
  sub.add_option("--solver", solver, "euler, unipc or dpm++2m");
  sub.add_option("--threads", threads, "OpenMP threads (0 = all cores)");
  sub.add_option("--isa", isa, "Attention kernel path: auto, portable, avx2, avx512, avx512bf16");
  sub.add_option("--gemm", gemm,
                 "GEMM of the linear layers: auto (OpenBLAS when it loads, else Eigen), eigen, openblas, bf16 (inputs "
                 "rounded to bfloat16, float32 sums; CPUs with AVX-512 BF16)");
  sub.add_option("--vae-tile", vae_tile,
                 "Wan2.1: decode in tiles of at most PX x PX pixels (a multiple of 8) blended across their overlap, "
                 "for sizes whose decode does not fit in memory (default: whole frames)");
  sub.add_option("--vae-tile-overlap", vae_tile_overlap, "With --vae-tile: pixels neighbouring tiles share and blend (multiple of 8; default 64)");
  sub.add_option("--max-memory", max_memory_mb, "Refuse runs estimated to need more than this many MiB (default: memory available)");
}

pipeline::GenerateOptions GenerationFlags::options(const pipeline::Model& model) const {
  const pipeline::SamplerDefaults& d = model.defaults;
  const DiTConfig& c = model.config();
  for (const auto& [flag, v, patch] : {std::tuple{"--height", height, c.patch_h}, std::tuple{"--width", width, c.patch_w}})
    if (v && *v < 1)
      throw UsageError(std::string(flag) + " " + std::to_string(*v) + " is out of range: expected a positive multiple of " +
                       std::to_string(patch) + " (omit it for the model's default)");
  pipeline::GenerateOptions o;
  try {
    if (frames && *frames < 1)
      throw UsageError("--frames " + std::to_string(*frames) + " is out of range: expected at least 1");
    o.shape = model.geometry.latent_shape(frames.value_or(d.frames), height.value_or(d.height), width.value_or(d.width),
                                          c.patch_h, c.patch_w);
    c.validate(o.shape);
    o.steps = steps.value_or(d.steps);
    if (steps) pipeline::check_steps(*steps, "--steps");
    o.cfg = cfg.value_or(d.cfg);
    if (cfg) pipeline::check_cfg(*cfg, "--cfg");
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  }
  o.seed = seed;
  o.solver = solver;
  if (riflex && *riflex != "off") {
    const std::optional<int> k = parse_int(*riflex);
    if (!k) throw UsageError("--riflex '" + *riflex + "': expected a temporal rotary pair (an integer) or off");
    try {
      check_riflex_pair(c, *k);
    } catch (const std::invalid_argument& e) {
      throw UsageError(std::string("--riflex ") + e.what() + " (or off for none)");
    }
    o.rope.riflex_k = *k;
  } else if (!riflex && adapters().riflex) {
    const int k = *adapters().riflex;
    try {
      check_riflex_pair(c, k);
    } catch (const std::invalid_argument& e) {
      throw UsageError("the --lora adapter's RIFLEx pair " + std::string(e.what()) + " of this model");
    }
    o.rope.riflex_k = k;
    std::cerr << "RIFLEx pair " << k << ": the adapter's (give --riflex to choose another, or off)\n";
  }
  if (model.family == "labels") {
    if (!context.empty() || !noise.empty())
      throw UsageError(std::string(context.empty() ? "--noise" : "--context") + " applies to Wan2.1 models, not '" + this->model + "'");
    const std::string text = labels.value_or("3,7");
    o.condition.labels = parse_int_list(text, "--labels");
    try {
      model.conditioner->validate(o.condition);
    } catch (const std::invalid_argument& e) {
      throw UsageError("--labels '" + text + "': " + e.what());
    }
  } else if (model.conditioner) {
    if (labels) throw UsageError("--labels applies to label models; '" + this->model + "' is conditioned on text states (--context)");
    if (context.empty() && !encoded)
      throw UsageError("'" + this->model + "' is conditioned on text: give --prompt TEXT or the encoder states with --context FILE.safetensors");
    try {
      if (encoded) {
        o.condition.prompt = encoded->prompt;
        o.condition.negative_prompt = encoded->negative_prompt;
      } else {
        pipeline::read_context_file(context, o.condition);
      }
      if (model.conditioner) model.conditioner->validate(o.condition);
      if (!noise.empty()) o.noise = pipeline::read_noise_file(noise, o.shape, c.in_channels);
    } catch (const std::exception& e) {
      throw UsageError(e.what());
    }
  }
  if (max_memory_mb && !(*max_memory_mb > 0 && *max_memory_mb <= 1e9))
    throw UsageError("--max-memory " + num(*max_memory_mb) +
                     " is out of range: expected a positive number of MiB up to 1e9 (omit it for the memory available)");
  o.memory_limit_bytes = max_memory_mb ? int64_t(*max_memory_mb * 1024 * 1024) : 0;
  try {
    gemm::set_backend(gemm::parse_backend(gemm));
  } catch (const std::invalid_argument& e) {
    throw UsageError(std::string("--gemm: ") + e.what());
  }
  o.progress = isatty(2);
  return o;
}

std::optional<DType> parse_dtype_flag(const std::string& text) {
  if (text == "bf16") return DType::BF16;
  if (text == "float32") return DType::F32;
  if (text != "auto") throw UsageError("--dtype '" + text + "' is not one of auto, bf16, float32");
  return std::nullopt;
}

sampler::CacheSpec parse_cache_flag(const std::string& text) {
  try {
    return sampler::CacheSpec::parse(text);
  } catch (const std::invalid_argument& e) {
    throw UsageError(std::string("--cache: ") + e.what());
  }
}

std::string prompt_cache_dir(const std::string& flag) {
  if (flag == "off") return "";
  return flag.empty() ? pipeline::default_prompt_cache_dir() : flag;
}

nlohmann::json prompt_json(const pipeline::EncodedPrompts& e) {
  nlohmann::json j;
  j["prompt_tokens"] = e.prompt_tokens;
  j["negative_prompt_tokens"] = e.negative_tokens;
  j["from_cache"] = e.from_cache;
  j["cache_file"] = e.cache_file.empty() ? nlohmann::json(nullptr) : nlohmann::json(e.cache_file);
  j["seconds"] = e.seconds;
  j["dtype"] = e.dtype;
  j["warnings"] = e.warnings;
  return j;
}

pipeline::LoadOptions GenerationFlags::load_options() const {
  pipeline::LoadOptions o;
  o.dtype = parse_dtype_flag(dtype);
  if (max_memory_mb && !(*max_memory_mb > 0 && *max_memory_mb <= 1e9))
    throw UsageError("--max-memory " + num(*max_memory_mb) +
                     " is out of range: expected a positive number of MiB up to 1e9 (omit it for the memory available)");
  o.memory_limit_bytes = max_memory_mb ? int64_t(*max_memory_mb * 1024 * 1024) : 0;
  try {
    o.vae_tiling = pipeline::vae_tiling_from_pixels(vae_tile, vae_tile_overlap);
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  }
  for (const std::string& l : lora) {
    try {
      o.loras.push_back(parse_lora_flag(l));
    } catch (const std::invalid_argument& e) {
      throw UsageError(e.what());
    }
  }
  if (o.vae_tiling.on() && !pipeline::is_wan_spec(model))
    throw UsageError("--vae-tile applies to a Wan2.1 model's VAE; '" + model + "' has none");
  return o;
}

const io::LoraTraining& GenerationFlags::adapters() const {
  if (!adapters_) {
    try {
      adapters_ = pipeline::adapters_training(load_options().loras);
    } catch (const std::invalid_argument& e) {
      throw UsageError(e.what());
    }
  }
  return *adapters_;
}

pipeline::Model GenerationFlags::load_model() const {
  const pipeline::LoadOptions o = load_options();
  if (negative_prompt && !prompt) throw UsageError("--negative-prompt needs --prompt");
  if (prompt) {
    if (!context.empty()) throw UsageError("give --prompt TEXT or --context FILE, not both");
    if (!pipeline::is_wan_spec(model))
      throw UsageError("--prompt applies to a Wan2.1 model folder (with its umT5 text encoder), not '" + model + "'");
    pipeline::PromptOptions p;
    p.model = model;
    p.prompt = *prompt;
    p.negative_prompt = negative_prompt;
    p.dtype = o.dtype;
    p.cache_dir = prompt_cache_dir(prompt_cache);
    try {
      encoded = pipeline::encode_prompts(p);
    } catch (const std::invalid_argument& e) {
      throw UsageError(e.what());
    }
    for (const std::string& w : encoded->warnings) std::cerr << "warning: " << w << "\n";
  }
  try {
    return pipeline::load_model(model, o);
  } catch (const std::invalid_argument& e) {
    // A dtype this model or CPU cannot take; an HDF5 model's own errors keep their exit status.
    if (pipeline::is_wan_spec(model) || o.dtype) throw UsageError(e.what());
    throw;
  }
}

attn::KernelOptions GenerationFlags::kernel_options() const {
  attn::KernelOptions k;
  try {
    k.isa = attn::parse_isa(isa);
    attn::resolve_isa(k.isa);  // refuse a path this CPU cannot run before any work
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  }
  return k;
}

void check_output_path(const std::string& path, bool overwrite, bool video) {
  if (path.empty()) throw UsageError("output path is empty");
  if (video && !io::is_supported_output(path))
    throw UsageError("output '" + path + "' has unknown extension '" + io::extension(path) + "': expected " +
                     io::supported_outputs());
  fs::path dir = fs::path(path).parent_path();
  if (dir.empty()) dir = ".";
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw UsageError("output directory '" + dir.string() + "' does not exist");
  if (!io::directory_writable(dir.string())) throw UsageError("output directory '" + dir.string() + "' is not writable");
  if (fs::is_directory(path, ec)) throw UsageError("output path '" + path + "' is a directory, expected a file name");
  if (fs::exists(path, ec) && !overwrite)
    throw UsageError("output file '" + path + "' already exists; pass --overwrite to replace it");
}

void write_json(const std::string& path, const nlohmann::json& j, bool overwrite, io::OutputBatch* batch) {
  auto out = std::make_unique<io::AtomicOutput>(path, overwrite);
  {
    std::ofstream f(out->temp_path());
    f << j.dump(2) << "\n";
    f.flush();
    if (!f) throw std::runtime_error("cannot write JSON to '" + path + "' (disk full?)");
  }
  io::publish(std::move(out), batch);
}

}  // namespace ditgen::app
