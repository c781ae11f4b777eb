// Wan2.1 as a model family of the pipeline and the CLI: a model folder of the committed tiny
// goldens (tests/data/wan/, official code, docs/wan-reference.md) generates through
// pipeline::generate and `ditgen generate` from the official noise and context, and must reach
// the official sampler's latents; bf16 weights, sharded files, the context and noise files, and
// what bad input does.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "attention/backend.h"
#include "dit/gemm_bf16.h"
#include "io/safetensors.h"
#include "io/safetensors_set.h"
#include "io/video.h"
#include "pipeline/generate.h"
#include "pipeline/wan.h"
#include "tests/test_util.h"
#include "tests/wan_folder.h"
#include "tests/wan_golden.h"

namespace ditgen {
namespace {

namespace fs = std::filesystem;
using test::WanFolder;
const std::string kDir = std::string(DITGEN_SOURCE_DIR) + "/tests/data/wan/";

// PSNR of `got` (T, H, W, C) against the official latents [C, T, H, W] (peak: their range).
double psnr_to_official(const WanFolder& f, const std::vector<float>& got_thwc) {
  const std::vector<int64_t> s = f.sample.tensor("latents").shape;
  const std::vector<float> ref = f.sample.to_float("latents"), got = wan_golden::to_cthw(got_thwc, s);
  double mse = 0, lo = ref[0], hi = ref[0];
  for (size_t i = 0; i < ref.size(); ++i) {
    mse += (double(got[i]) - ref[i]) * (double(got[i]) - ref[i]);
    lo = std::min(lo, double(ref[i])), hi = std::max(hi, double(ref[i]));
  }
  return 10 * std::log10((hi - lo) * (hi - lo) / (mse / double(ref.size())));
}

pipeline::GenerateResult run(const WanFolder& f, pipeline::Model& m) {
  pipeline::GenerateOptions o;
  o.shape = f.latent();
  pipeline::read_context_file(f.context, o.condition);
  o.noise = pipeline::read_noise_file(f.noise, o.shape, m.config().in_channels);
  o.steps = int(f.sample.tensor("timesteps").numel());
  o.cfg = m.defaults.cfg;
  attn::DenseBackend dense;
  return pipeline::generate(m, dense, o);
}

TEST(WanPipeline, FolderLoadsAsTheWanFamily) {
  WanFolder f;
  pipeline::LoadOptions lo;
  lo.dtype = DType::F32;
  pipeline::Model m = pipeline::load_model(f.model, lo);
  EXPECT_EQ(m.family, "wan2.1-t2v");
  EXPECT_EQ(m.dtype, "float32");
  EXPECT_EQ(m.decoder, nullptr);
  EXPECT_EQ(m.defaults.steps, 50);
  EXPECT_EQ(m.defaults.cfg, 5.0);
  EXPECT_EQ(m.defaults.shift, 5.0);
  EXPECT_EQ(m.defaults.frames, 81);
  EXPECT_EQ(m.defaults.height, 480);
  EXPECT_EQ(m.defaults.width, 832);
  EXPECT_TRUE(m.defaults.integer_timesteps);
  // 480 x 832 x 81 frames: the 21 x 60 x 104 latent (21 x 30 x 52 tokens).
  EXPECT_EQ(m.geometry.latent_shape(81, 480, 832, 2, 2), (LatentShape{21, 60, 104}));
  EXPECT_EQ(m.geometry.video_frames(21), 81);
  EXPECT_THROW(m.geometry.latent_shape(80, 480, 832, 2, 2), std::invalid_argument);
  EXPECT_THROW(m.geometry.latent_shape(81, 488, 832, 2, 2), std::invalid_argument);  // 8 but not 16
  // The file alone, with config.json beside it, is the same model.
  pipeline::Model file = pipeline::load_model(f.model + "/diffusion_pytorch_model.safetensors", lo);
  EXPECT_EQ(file.config().num_layers, m.config().num_layers);
}

TEST(WanPipeline, GenerateFromTheOfficialNoiseReachesTheOfficialLatents) {
  // Context padding, integer timesteps, the schedule (shift 5), UniPC and guidance 5, all from
  // the family's defaults, through pipeline::generate.
  WanFolder f;
  pipeline::LoadOptions lo;
  lo.dtype = DType::F32;
  pipeline::Model m = pipeline::load_model(f.model, lo);
  const pipeline::GenerateResult r = run(f, m);
  const double db = psnr_to_official(f, r.video);
  std::printf("float32 weights: %.1f dB against the official latents\n", db);
  EXPECT_GE(db, 40.0);
  EXPECT_EQ(r.frames.frames, 0);  // no decoder: the latent is the output
}

TEST(WanPipeline, Bf16WeightsStayCloseToTheOfficialLatents) {
  WanFolder f;
  pipeline::LoadOptions lo;
  lo.dtype = DType::BF16;
  if (!gemm::bf16_gemm_available()) {
    // Asked for and not runnable: refused, never computed some other way.
    EXPECT_THROW(pipeline::load_model(f.model, lo), std::invalid_argument);
    return;
  }
  pipeline::Model m = pipeline::load_model(f.model, lo);
  EXPECT_EQ(m.dtype, "bf16");
  lo.dtype = DType::F32;
  pipeline::Model m32 = pipeline::load_model(f.model, lo);
  // Linear weights at 2 bytes instead of 4; the rest (norms, modulation, biases) float32.
  EXPECT_LT(m.dit->weight_bytes(), m32.dit->weight_bytes() * 6 / 10);
  const double db = psnr_to_official(f, run(f, m).video);
  std::printf("bf16 weights: %.1f dB against the official latents\n", db);
  // bf16 GEMM inputs (8 significant bits) over 4 guided steps: 60.6 dB measured; 40 dB is the
  // issue's bar for the sampler.
  EXPECT_GE(db, 40.0);
}

TEST(WanPipeline, ShardedIndexLoadsTheSameModel) {
  WanFolder f;
  const io::SafetensorsFile w = io::SafetensorsFile::open(kDir + "tiny_dit.safetensors");
  std::vector<std::vector<float>> data;
  for (const auto& t : w.tensors()) data.push_back(w.to_float(t.name));
  std::vector<io::SafetensorsWriteTensor> a, b;
  nlohmann::json index;
  for (size_t i = 0; i < w.tensors().size(); ++i) {
    const bool first = w.tensors()[i].name.rfind("blocks.1.", 0) != 0;
    (first ? a : b).push_back({w.tensors()[i].name, DType::F32, w.tensors()[i].shape, data[i].data(), nullptr});
    index["weight_map"][w.tensors()[i].name] = first ? "part-1.safetensors" : "part-2.safetensors";
  }
  const std::string dir = (f.dir.path / "sharded").string();
  fs::create_directory(dir);
  io::write_safetensors(dir + "/part-1.safetensors", a);
  io::write_safetensors(dir + "/part-2.safetensors", b);
  std::ofstream(dir + "/diffusion_pytorch_model.safetensors.index.json") << index.dump();
  fs::copy_file(f.model + "/config.json", dir + "/config.json");
  pipeline::LoadOptions lo;
  lo.dtype = DType::F32;
  pipeline::Model one = pipeline::load_model(f.model, lo), two = pipeline::load_model(dir, lo);
  EXPECT_EQ(run(f, one).video, run(f, two).video);

  // An index naming a tensor its shard lacks, and a tensor in two shards, are refused.
  index["weight_map"]["blocks.1.modulation"] = "part-1.safetensors";
  std::ofstream(dir + "/diffusion_pytorch_model.safetensors.index.json") << index.dump();
  EXPECT_THROW(pipeline::load_model(dir, lo), std::runtime_error);
  io::write_safetensors(dir + "/part-1.safetensors", {a[0], b[0]});
  EXPECT_THROW(io::SafetensorsSet::open_index(dir + "/diffusion_pytorch_model.safetensors.index.json"), std::runtime_error);
}

TEST(WanPipeline, ConfigThatDisagreesWithTheShapesIsRefused) {
  WanFolder f;
  nlohmann::json j = nlohmann::json::parse(std::ifstream(f.model + "/config.json"));
  j["num_layers"] = 3;
  std::ofstream(f.model + "/config.json") << j.dump();
  try {
    pipeline::load_model(f.model);
    FAIL() << "loaded";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("config.json says num_layers = 3 but the tensors have 2"), std::string::npos) << e.what();
  }
}

TEST(WanPipeline, WeightsBeyondTheMemoryAreRefusedBeforeLoading) {
  WanFolder f;
  pipeline::LoadOptions lo;
  lo.dtype = DType::F32;
  lo.memory_limit_bytes = 100 << 10;  // the tiny model's float32 weights are about 650 KB
  try {
    pipeline::load_model(f.model, lo);
    FAIL() << "loaded";
  } catch (const std::runtime_error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("needs about 0 MiB for its weights in float32"), std::string::npos) << m;
    EXPECT_NE(m.find("--dtype bf16 halves the weights"), std::string::npos) << m;
  }
}

TEST(WanPipeline, CommandLineWritesTheSameLatents) {
  WanFolder f;
  const std::string lat = (f.dir.path / "latents.safetensors").string(), json = (f.dir.path / "run.json").string();
  const LatentShape s = f.latent();
  const std::string size = " --frames " + std::to_string(1 + 4 * (s.frames - 1)) + " --height " +
                           std::to_string(8 * s.height) + " --width " + std::to_string(8 * s.width);
  const auto r = test::run_ditgen("generate --model " + f.model + " --context " + f.context + " --noise " + f.noise +
                                  size + " --steps 4 --attn dense --cache off --dtype float32 --latents-out " + lat + " --json " + json);
  ASSERT_EQ(r.status, 0) << r.output;
  const io::SafetensorsFile out = io::SafetensorsFile::open(lat);
  EXPECT_EQ(out.tensor("latents").shape, f.sample.tensor("latents").shape);
  const std::vector<float> got = out.to_float("latents");
  const std::vector<int64_t> shape = out.tensor("latents").shape;
  const double db = psnr_to_official(f, wan_golden::to_thwc(got, shape));
  std::printf("ditgen generate: %.1f dB against the official latents\n", db);
  EXPECT_GE(db, 40.0);
  const nlohmann::json j = nlohmann::json::parse(std::ifstream(json));
  EXPECT_EQ(j.at("family"), "wan2.1-t2v");
  EXPECT_EQ(j.at("dtype"), "float32");
  EXPECT_EQ(j.at("frames"), 1 + 4 * (s.frames - 1));
  EXPECT_EQ(j.at("latent"), nlohmann::json({s.frames, s.height, s.width}));
}

TEST(WanPipeline, InspectShowsTheFolder) {
  WanFolder f;
  const std::string json = (f.dir.path / "inspect.json").string();
  const auto r = test::run_ditgen("inspect --model " + f.model + " --json " + json);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("family: wan2.1-t2v"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("blocks.1.ffn.2.weight"), std::string::npos) << r.output;
  const nlohmann::json j = nlohmann::json::parse(std::ifstream(json));
  const io::SafetensorsFile w = io::SafetensorsFile::open(kDir + "tiny_dit.safetensors");
  EXPECT_EQ(j.at("tensors").size(), w.tensors().size());
  int64_t params = 0;
  for (const auto& t : w.tensors()) params += t.numel();
  EXPECT_EQ(j.at("parameters").get<int64_t>(), params);
  EXPECT_EQ(j.at("config").at("num_layers"), 2);
  EXPECT_LT(j.at("weights_in_memory_bf16_mib").get<double>(), j.at("weights_in_memory_float32_mib").get<double>());
}

TEST(WanPipeline, FolderWithTheVaeEndsInFrames) {
  // The tiny official-structure VAE under its release name: generate decodes, and `ditgen vae`
  // decodes the saved latents to the same frames; the frames encode and decode again.
  WanFolder f;
  fs::copy_file(kDir + "tiny_vae.safetensors", f.model + "/Wan2.1_VAE.safetensors");
  const fs::path gen = f.dir.path / "gen", again = f.dir.path / "again";
  const std::string lat = (f.dir.path / "latents.safetensors").string(), json = (f.dir.path / "run.json").string();
  auto r = test::run_ditgen("generate --model " + f.model + " --context " + f.context + " --noise " + f.noise +
                            " --steps 2 --frames 9 --height 48 --width 80 --dtype float32 --frames-dir " +
                            gen.string() + " --latents-out " + lat + " --json " + json);
  ASSERT_EQ(r.status, 0) << r.output;
  const Frames a = io::read_frames(gen.string(), 3);
  EXPECT_EQ(a.frames, 9);
  EXPECT_EQ(a.height, 48);
  EXPECT_EQ(a.width, 80);
  EXPECT_GT(nlohmann::json::parse(std::ifstream(json)).at("decode_seconds").get<double>(), 0.0);

  r = test::run_ditgen("vae --model " + f.model + " --decode " + lat + " --dtype float32 --frames-dir " + again.string());
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(io::read_frames(again.string(), 3).data, a.data);

  const std::string rt = (f.dir.path / "rt.json").string();
  r = test::run_ditgen("vae --model " + f.model + "/Wan2.1_VAE.safetensors --encode " + gen.string() +
                       " --roundtrip --dtype float32 --json " + rt);
  ASSERT_EQ(r.status, 0) << r.output;
  const nlohmann::json j = nlohmann::json::parse(std::ifstream(rt));
  EXPECT_EQ(j.at("frames"), 9);
  EXPECT_TRUE(std::isfinite(j.at("roundtrip_psnr_db").get<double>())) << j.dump();
}

TEST(WanPipeline, VaeRefusesBadLatentsAndWritesNothing) {
  WanFolder f;
  fs::copy_file(kDir + "tiny_vae.safetensors", f.model + "/Wan2.1_VAE.safetensors");
  const fs::path out = f.dir.path / "frames";
  auto refused = [&](const std::vector<int64_t>& shape, float value, const std::string& message) {
    const std::string lat = (f.dir.path / "bad.safetensors").string();
    std::vector<float> z(size_t(shape[0] * shape[1] * shape[2] * shape[3]), 0.25f);
    z[z.size() / 2] = value;
    fs::remove(lat);
    io::write_safetensors(lat, {{"latents", DType::F32, shape, z.data(), nullptr}});
    const auto r = test::run_ditgen("vae --model " + f.model + " --decode " + lat + " --frames-dir " + out.string());
    EXPECT_NE(r.status, 0) << r.output;
    EXPECT_NE(r.output.find(message), std::string::npos) << "expected '" << message << "' in\n" << r.output;
    EXPECT_FALSE(fs::exists(out) && !fs::is_empty(out)) << message;
  };
  refused({8, 2, 6, 10}, 0.25f, "8 channels");
  refused({16, 2, 6, 10}, NAN, "non-finite value");
}

TEST(WanPipeline, BadInputIsRefusedAndWritesNothing) {
  WanFolder f;
  const std::string lat = (f.dir.path / "latents.safetensors").string();
  const std::string base = "generate --model " + f.model + " --steps 1 ";
  auto refused = [&](std::string args, int status, const std::string& message) {
    for (const char* flag : {" --frames 9", " --height 48", " --width 80"})
      if (args.find(std::string(flag).substr(0, 9)) == std::string::npos) args += flag;
    const auto r = test::run_ditgen(base + args);
    EXPECT_EQ(r.status, status) << args << "\n" << r.output;
    EXPECT_NE(r.output.find(message), std::string::npos) << args << ": expected '" << message << "' in\n" << r.output;
    EXPECT_FALSE(fs::exists(lat)) << args;
  };
  const std::string ctx = " --context " + f.context, out = " --latents-out " + lat;
  refused(out, 2, "is conditioned on text: give --prompt TEXT or the encoder states with --context FILE.safetensors");
  refused(ctx + " --labels 3,7" + out, 2, "--labels applies to label models");
  refused(ctx, 2, "nothing to write: give --out (frames) or --latents-out");
  refused(ctx + " --out " + (f.dir.path / "v.mp4").string(), 2, "has no Wan2.1 VAE: expected Wan2.1_VAE.safetensors");
  refused(ctx + " --dtype half" + out, 2, "--dtype 'half' is not one of auto, bf16, float32");
  refused(ctx + " --frames 8" + out, 2, "frames 8 is out of range: expected 1 + 4k");
  refused(ctx + " --height 40" + out, 2, "height 40 is out of range: expected a positive multiple of 16");
  refused(" --context " + f.noise + out, 2, "has no tensor 'prompt'");
  refused(ctx + " --noise " + f.context + out, 2, "has no tensor 'noise'");
  refused(ctx + " --noise " + f.noise + " --frames 13" + out, 2, "expected a float (16, 4, 6, 10)");
  refused(ctx + " --latents-out " + (f.dir.path / "l.bin").string(), 2, "must end in .safetensors");
  // Guidance without the negative prompt's states.
  const std::string pos_only = (f.dir.path / "pos.safetensors").string();
  const std::vector<float> pos = f.sample.to_float("context");
  io::write_safetensors(pos_only, {{"prompt", DType::F32, f.sample.tensor("context").shape, pos.data(), nullptr}});
  refused(" --context " + pos_only + out, 2, "guidance needs the negative prompt's states");
  // States of the wrong width.
  const std::string wide = (f.dir.path / "wide.safetensors").string();
  const std::vector<float> z(7 * 33, 0.5f);
  io::write_safetensors(wide, {{"prompt", DType::F32, {7, 33}, z.data(), nullptr}});
  refused(" --context " + wide + out, 2, "prompt states have shape (7, 33), expected (tokens 1 to 512, 32)");
  refused(ctx + " --max-memory 0.1" + out, 1, "for its weights in");
}

}  // namespace
}  // namespace ditgen
