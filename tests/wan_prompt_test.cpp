// Prompts into a Wan2.1 run: a model folder with the tiny DiT (tests/wan_folder.h), the test
// tokenizer (tests/data/tokenizer/test_spiece.model, as google/umt5-xxl/spiece.model) and a
// random umT5 encoder of the DiT's text width. `ditgen encode-text` writes what --context reads;
// `generate --prompt` gives the same latents as `generate --context` of those states; the prompt
// cache is hit on a repeat and missed on another prompt; bad input writes nothing. The encoder's
// numerics are checked against the official code in wan_t5_test.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "cond/umt5.h"
#include "io/safetensors.h"
#include "pipeline/prompt.h"
#include "tests/test_util.h"
#include "tests/wan_folder.h"

namespace ditgen {
namespace {

namespace fs = std::filesystem;

// The tiny DiT's folder with a text encoder: 2 blocks of width 32 (the DiT's text_dim), the test
// tokenizer's 1,000 pieces, random weights scaled to keep the states of order one.
struct PromptFolder : test::WanFolder {
  std::string cache = (dir.path / "cache").string();
  PromptFolder() {
    cond::UmT5Config c;
    c.vocab = 1000, c.dim = 32, c.dim_attn = 32, c.dim_ffn = 64, c.num_heads = 2, c.num_layers = 2, c.num_buckets = 32;
    std::mt19937_64 rng(5);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<std::vector<float>> keep;
    std::vector<io::SafetensorsWriteTensor> out;
    for (const auto& [name, shape] : cond::umt5_tensor_table(c)) {
      int64_t n = 1;
      for (int64_t d : shape) n *= d;
      const bool norm = name.find("norm") != std::string::npos;
      const float scale = norm ? 0.1f : name.find("embedding") != std::string::npos ? 1.0f : 1.0f / std::sqrt(float(shape[1]));
      keep.emplace_back(size_t(n));
      for (float& v : keep.back()) v = (norm ? 1.0f : 0.0f) + scale * normal(rng);
      out.push_back({name, DType::BF16, shape, keep.back().data(), nullptr});
    }
    io::write_safetensors(model + "/models_t5_umt5-xxl-enc-bf16.safetensors", out);
    fs::create_directories(model + "/google/umt5-xxl");
    fs::copy_file(std::string(DITGEN_SOURCE_DIR) + "/tests/data/tokenizer/test_spiece.model",
                  model + "/google/umt5-xxl/spiece.model");
  }
  std::string size() const {
    const LatentShape s = latent();
    return " --frames " + std::to_string(1 + 4 * (s.frames - 1)) + " --height " + std::to_string(8 * s.height) +
           " --width " + std::to_string(8 * s.width) + " --steps 2 --attn dense --dtype float32 --noise " + noise;
  }
};

std::vector<float> latents(const std::string& path) { return io::SafetensorsFile::open(path).to_float("latents"); }
nlohmann::json json_of(const std::string& path) { return nlohmann::json::parse(std::ifstream(path)); }

TEST(WanPrompt, EncodeTextThenContextEqualsPrompt) {
  PromptFolder f;
  const std::string ctx = (f.dir.path / "ctx.safetensors").string(), a = (f.dir.path / "a.safetensors").string(),
                    b = (f.dir.path / "b.safetensors").string(), ja = (f.dir.path / "a.json").string();
  const std::string prompt = " --prompt 'a cat surfing a wave' --negative-prompt 'blurry'";
  auto r = test::run_ditgen("encode-text --model " + f.model + prompt + " --dtype float32 --prompt-cache off --out " + ctx);
  ASSERT_EQ(r.status, 0) << r.output;
  const io::SafetensorsFile c = io::SafetensorsFile::open(ctx);
  ASSERT_EQ(c.tensor("prompt").shape.size(), 2u);
  EXPECT_EQ(c.tensor("prompt").shape[1], 32);
  EXPECT_EQ(c.tensor("negative_prompt").shape[1], 32);
  EXPECT_GT(c.tensor("prompt").shape[0], c.tensor("negative_prompt").shape[0]);  // more words, more tokens

  r = test::run_ditgen("generate --model " + f.model + " --context " + ctx + f.size() + " --latents-out " + b);
  ASSERT_EQ(r.status, 0) << r.output;
  r = test::run_ditgen("generate --model " + f.model + prompt + " --prompt-cache off" + f.size() + " --latents-out " + a +
                       " --json " + ja);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(latents(a), latents(b));
  const nlohmann::json j = json_of(ja).at("prompt");
  EXPECT_EQ(j.at("prompt_tokens"), c.tensor("prompt").shape[0]);
  EXPECT_EQ(j.at("from_cache"), false);
  EXPECT_TRUE(j.at("cache_file").is_null());
}

TEST(WanPrompt, CacheIsHitOnARepeatAndMissedOnAnotherPrompt) {
  PromptFolder f;
  const auto gen = [&](const std::string& prompt, const std::string& tag) {
    const std::string lat = (f.dir.path / (tag + ".safetensors")).string(), json = (f.dir.path / (tag + ".json")).string();
    const auto r = test::run_ditgen("generate --model " + f.model + " --prompt '" + prompt + "' --prompt-cache " + f.cache +
                                    f.size() + " --latents-out " + lat + " --json " + json);
    EXPECT_EQ(r.status, 0) << r.output;
    return std::pair{latents(lat), json_of(json).at("prompt")};
  };
  const auto [first, j1] = gen("a red boat", "1");
  const auto [second, j2] = gen("a red boat", "2");
  const auto [other, j3] = gen("a red boat at night", "3");
  EXPECT_EQ(j1.at("from_cache"), false);
  EXPECT_EQ(j2.at("from_cache"), true);
  EXPECT_EQ(j3.at("from_cache"), false);
  EXPECT_EQ(j1.at("cache_file"), j2.at("cache_file"));
  EXPECT_NE(j1.at("cache_file"), j3.at("cache_file"));
  EXPECT_EQ(first, second);  // the cached states are the encoder's, bit for bit
  EXPECT_NE(first, other);
  // A damaged cache file is re-encoded, not trusted.
  std::ofstream(j1.at("cache_file").get<std::string>(), std::ios::trunc) << "not safetensors";
  const auto [again, j4] = gen("a red boat", "4");
  EXPECT_EQ(j4.at("from_cache"), false);
  EXPECT_EQ(again, first);
}

TEST(WanPrompt, DefaultNegativePromptIsWans) {
  // Wan2.1's negative prompt, tokenized by the test model: a longer sequence than "blurry".
  PromptFolder f;
  pipeline::PromptOptions o;
  o.model = f.model, o.prompt = "x", o.dtype = DType::F32;
  const pipeline::EncodedPrompts d = pipeline::encode_prompts(o);
  o.negative_prompt = pipeline::wan_default_negative_prompt();
  const pipeline::EncodedPrompts same = pipeline::encode_prompts(o);
  EXPECT_EQ(d.negative_tokens, same.negative_tokens);
  EXPECT_GT(d.negative_tokens, 20);
  o.negative_prompt = "";
  EXPECT_EQ(pipeline::encode_prompts(o).negative_tokens, 1);  // "" is what the user wrote: EOS alone
}

TEST(WanPrompt, LongPromptIsCutWithAWarning) {
  PromptFolder f;
  std::string words;
  for (int i = 0; i < 400; ++i) words += "lorem ipsum ";
  const std::string ctx = (f.dir.path / "ctx.safetensors").string();
  const auto r = test::run_ditgen("encode-text --model " + f.model + " --prompt '" + words + "' --prompt-cache off --out " + ctx);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("warning: prompt: "), std::string::npos) << r.output;
  EXPECT_EQ(io::SafetensorsFile::open(ctx).tensor("prompt").shape[0], 512);
}

TEST(WanPrompt, BadInputIsRefusedAndWritesNothing) {
  PromptFolder f;
  const std::string out = (f.dir.path / "out.safetensors").string();
  const auto refused = [&](const std::string& args, int status, const std::string& needle) {
    const auto r = test::run_ditgen(args);
    EXPECT_EQ(r.status, status) << args << "\n" << r.output;
    EXPECT_NE(r.output.find(needle), std::string::npos) << r.output;
    EXPECT_FALSE(fs::exists(out)) << args;
  };
  refused("encode-text --model " + f.model + "  --prompt \"$(printf 'bad \\377 byte')\" --prompt-cache off --out " + out, 2, "UTF-8");
  refused("generate --model " + f.model + " --prompt x --context " + f.context + f.size() + " --latents-out " + out, 2,
          "not both");
  refused("generate --model " + f.model + " --negative-prompt x --context " + f.context + f.size() + " --latents-out " + out,
          2, "--negative-prompt needs --prompt");
  refused("generate --model " + std::string(DITGEN_SOURCE_DIR) + "/models/digits-dit.h5 --prompt x --frames 1 --out " +
              (f.dir.path / "x.png").string(), 2, "--prompt applies to a Wan2.1 model");
  fs::remove(f.model + "/google/umt5-xxl/spiece.model");
  refused("encode-text --model " + f.model + " --prompt x --prompt-cache off --out " + out, 1, "spiece.model");
  fs::remove(f.model + "/models_t5_umt5-xxl-enc-bf16.safetensors");
  refused("encode-text --model " + f.model + " --prompt x --prompt-cache off --out " + out, 1,
          "models_t5_umt5-xxl-enc-bf16.safetensors");
}

}  // namespace
}  // namespace ditgen
