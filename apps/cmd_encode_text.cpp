// ditgen encode-text: a prompt (and the negative prompt) through the model folder's umT5 encoder,
// written as the states --context reads.
#include <iostream>
#include <memory>
#include <optional>

#include "apps/cli_common.h"
#include "apps/commands.h"
#include "io/atomic_file.h"
#include "pipeline/memory.h"
#include "pipeline/prompt.h"

namespace ditgen::app {
namespace {

struct EncodeTextArgs {
  pipeline::PromptOptions run;
  std::optional<std::string> negative_prompt;
  std::string dtype = "auto", out, json, cache;
  int threads = 0;
  bool overwrite = false;
};

void run_encode_text(EncodeTextArgs a) {
  set_threads(a.threads);
  a.run.dtype = parse_dtype_flag(a.dtype);
  a.run.negative_prompt = a.negative_prompt;
  a.run.cache_dir = prompt_cache_dir(a.cache);
  check_output_path(a.out, a.overwrite, false);
  if (io::extension(a.out) != ".safetensors") throw UsageError("--out '" + a.out + "' must end in .safetensors");
  if (!a.json.empty()) check_output_path(a.json, a.overwrite, false);
  pipeline::EncodedPrompts e;
  try {
    e = pipeline::encode_prompts(a.run);
  } catch (const std::invalid_argument& ex) {
    throw UsageError(ex.what());
  }
  for (const std::string& w : e.warnings) std::cerr << "warning: " << w << "\n";
  pipeline::write_context_file(a.out, e, a.overwrite);
  if (!a.json.empty()) {
    nlohmann::json j = prompt_json(e);
    j["model"] = a.run.model;
    j["peak_rss_mb"] = pipeline::peak_rss_mb();
    write_json(a.json, j, a.overwrite);
  }
  std::cerr << "encoded " << e.prompt_tokens << " + " << e.negative_tokens << " tokens"
            << (e.from_cache ? " (from the prompt cache)" : "") << " in " << e.seconds << " s -> " << a.out << "\n";
}

const Registrar reg("encode-text", "Encode a prompt with a Wan2.1 folder's umT5 text encoder into a --context file",
                    [](CLI::App& sub) {
  auto a = std::make_shared<EncodeTextArgs>();
  sub.add_option("--model", a->run.model,
                 "Wan2.1 model folder (models_t5_umt5-xxl-enc-bf16.safetensors and google/umt5-xxl/spiece.model)")
      ->required();
  sub.add_option("--prompt", a->run.prompt, "The prompt (UTF-8)")->required();
  sub.add_option("--negative-prompt", a->negative_prompt, "The negative prompt (default: Wan2.1's)");
  sub.add_option("--out", a->out, "States to write: .safetensors with tensors prompt and negative_prompt [tokens, 4096]")
      ->required();
  sub.add_option("--dtype", a->dtype, "The encoder's products: auto (bf16 where the CPU has AVX-512 BF16), bf16, float32")
      ->capture_default_str();
  sub.add_option("--prompt-cache", a->cache, "Folder of cached prompt states, or 'off' (default: ~/.cache/ditgen/prompts)");
  sub.add_option("--json", a->json, "Write a machine-readable summary");
  sub.add_option("--threads", a->threads, "OpenMP threads (0: all)");
  sub.add_flag("--overwrite", a->overwrite, "Replace existing output files");
  sub.callback([a] { run_encode_text(*a); });
});

}  // namespace
}  // namespace ditgen::app
