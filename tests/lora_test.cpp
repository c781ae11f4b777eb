// LoRA adapters (dit/lora.h, io/lora_file.h, --lora): the merge against a plain twin for each
// weight form, the file layouts (PEFT, kohya, diffusers names, prefixes) giving one merge, the
// refusals, and the command line (scale 0 and a zero adapter change nothing).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "dit/lora.h"
#include "io/lora_file.h"
#include "io/safetensors.h"
#include "io/weights_h5.h"
#include "pipeline/family.h"
#include "tests/model_util.h"
#include "tests/test_util.h"

namespace ditgen {
namespace {

std::vector<float> randn(size_t n, uint64_t seed, float scale) {
  std::mt19937_64 g(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(g);
  return v;
}

LoraLayer layer(const std::string& module, int64_t out, int64_t in, int64_t rank, double alpha, uint64_t seed) {
  LoraLayer l;
  l.module = l.source = module;
  l.rank = rank, l.in = in, l.out = out, l.alpha = alpha;
  l.down = randn(size_t(rank * in), seed, 0.5f);
  l.up = randn(size_t(out * rank), seed + 1, 0.5f);
  return l;
}

// W (out, in) as float32, whatever its form.
std::vector<float> weight_of(const LinearWeights& l) {
  std::vector<float> w(size_t(l.out() * l.in()));
  if (!l.packed.empty()) {
    l.packed.unpack(w.data());
  } else if (l.weight.dtype() == DType::BF16) {
    const auto* b = reinterpret_cast<const uint16_t*>(l.weight.raw());
    for (size_t i = 0; i < w.size(); ++i) w[i] = bf16_to_float(b[i]);
  } else {
    std::copy(l.weight.data(), l.weight.data() + w.size(), w.begin());
  }
  return w;
}

// The plain twin: W + scale alpha / r up · down, in double.
std::vector<double> merged(const std::vector<float>& w, const LoraLayer& l, double scale) {
  std::vector<double> out(w.begin(), w.end());
  const double s = scale * l.alpha / double(l.rank);
  for (int64_t o = 0; o < l.out; ++o)
    for (int64_t i = 0; i < l.in; ++i) {
      double acc = 0;
      for (int64_t r = 0; r < l.rank; ++r) acc += double(l.up[size_t(o * l.rank + r)]) * l.down[size_t(r * l.in + i)];
      out[size_t(o * l.in + i)] += s * acc;
    }
  return out;
}

LinearWeights* find(DiTWeights& w, const DiTConfig& c, const std::string& module) {
  for (const auto& [name, l] : named_linears(w, c))
    if (name == module) return l;
  return nullptr;
}

TEST(Lora, ParsesTheFlag) {
  EXPECT_EQ(parse_lora_flag("a.safetensors"), (std::pair<std::string, double>{"a.safetensors", 1.0}));
  EXPECT_EQ(parse_lora_flag("a.safetensors:0.5"), (std::pair<std::string, double>{"a.safetensors", 0.5}));
  EXPECT_EQ(parse_lora_flag("d:x/a.safetensors:-2"), (std::pair<std::string, double>{"d:x/a.safetensors", -2.0}));
  EXPECT_EQ(parse_lora_flag("a.safetensors:0"), (std::pair<std::string, double>{"a.safetensors", 0.0}));
  for (const char* bad : {"", "a.safetensors:", "a:abc", ":1", "a:inf", "a:1x"}) {
    try {
      parse_lora_flag(bad);
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("FILE:SCALE"), std::string::npos) << e.what();
    }
  }
}

TEST(Lora, MergesIntoEveryWeightFormAsThePlainTwin) {
  const DiTConfig c = test::small_config();
  for (int form = 0; form < 3; ++form) {  // float32, bfloat16, packed bf16
    if (form == 2 && !gemm::bf16_gemm_available()) continue;
    SCOPED_TRACE("form " + std::to_string(form));
    DiTWeights w = DiTWeights::random(c, 7);
    for (LinearWeights* l : w.linears()) {
      if (form == 0) continue;
      std::vector<uint16_t> bits(size_t(l->weight.size()));
      for (size_t i = 0; i < bits.size(); ++i) bits[i] = float_to_bf16(l->weight.data()[i]);
      Tensor t(l->weight.shape(), DType::BF16);
      std::copy(bits.begin(), bits.end(), reinterpret_cast<uint16_t*>(t.raw()));
      l->weight = std::move(t);
      if (form == 2) l->pack_bf16();
    }
    LoraAdapter a;
    a.path = "test";
    a.scale = 0.75;
    a.layers = {layer("blocks.0.self_attn.q", c.dim, c.dim, 4, 8.0, 1),
                layer("blocks.1.ffn.0", c.ffn_dim, c.dim, 3, 3.0, 3), layer("head.head", c.patch_values(), c.dim, 2, 1.0, 5)};
    std::vector<std::vector<double>> want;
    std::vector<std::vector<float>> before;
    for (const LoraLayer& l : a.layers) {
      before.push_back(weight_of(*find(w, c, l.module)));
      want.push_back(merged(before.back(), l, a.scale));
    }
    const std::vector<float> untouched = weight_of(*find(w, c, "blocks.0.self_attn.k"));
    merge_lora(w, c, a);
    for (size_t k = 0; k < a.layers.size(); ++k) {
      const std::vector<float> got = weight_of(*find(w, c, a.layers[k].module));
      size_t bad = 0;
      for (size_t i = 0; i < got.size(); ++i) {
        // float32: the float32 product (1e-5); bf16: one rounding of the sum (2^-9 relative).
        const double w = std::abs(want[k][i]);
        bad += !(std::abs(got[i] - want[k][i]) <= (form == 0 ? 1e-5 * (1 + w) : w / 256 + 1e-5));
      }
      EXPECT_EQ(bad, 0u) << a.layers[k].module;
      EXPECT_NE(got, before[k]) << a.layers[k].module;
    }
    EXPECT_EQ(weight_of(*find(w, c, "blocks.0.self_attn.k")), untouched);
  }
}

TEST(Lora, RefusesLayersTheModelDoesNotHave) {
  const DiTConfig c = test::small_config();
  DiTWeights w = DiTWeights::random(c, 7);
  auto refused = [&](LoraLayer l, const std::string& needle) {
    LoraAdapter a;
    a.path = "f.safetensors";
    a.layers = {std::move(l)};
    try {
      merge_lora(w, c, a);
      ADD_FAILURE() << "accepted " << a.layers[0].module;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("f.safetensors"), std::string::npos) << e.what();
    }
  };
  refused(layer("blocks.9.self_attn.q", c.dim, c.dim, 2, 2, 1), "not a linear layer");
  refused(layer("blocks.0.self_attn.norm_q", c.dim, c.dim, 2, 2, 1), "not a linear layer");
  refused(layer("blocks.0.self_attn.q", c.dim, c.dim + 1, 2, 2, 1), "out x in");
  refused(layer("blocks.0.ffn.2", c.ffn_dim, c.dim, 2, 2, 1), "out x in");  // ffn.2 is (D, F)
}

// One adapter written in several layouts: each reads back to the same release-named layers.
class LoraFiles : public ::testing::Test {
 protected:
  test::TempDir dir;
  DiTConfig c = test::small_config();
  std::vector<std::string> modules() {
    DiTWeights w = DiTWeights::random(c, 1);
    std::vector<std::string> m;
    for (const auto& n : named_linears(w, c)) m.push_back(n.first);
    return m;
  }
  // (name, values, shape) of one tensor to write as F32 or BF16.
  struct T {
    std::string name;
    std::vector<float> v;
    std::vector<int64_t> shape;
  };
  std::string write(const std::string& file, const std::vector<T>& ts, DType dtype = DType::F32,
                    const std::map<std::string, std::string>& metadata = {}) {
    const std::string path = (dir.path / file).string();
    std::vector<io::SafetensorsWriteTensor> out;
    for (const T& t : ts) out.push_back({t.name, dtype, t.shape, t.v.data(), nullptr});
    io::write_safetensors(path, out, metadata);
    return path;
  }
};

TEST_F(LoraFiles, EveryLayoutReadsToTheSameLayers) {
  const LoraLayer q = layer("blocks.0.self_attn.q", c.dim, c.dim, 4, 8.0, 11);
  const LoraLayer f = layer("blocks.1.ffn.0", c.ffn_dim, c.dim, 2, 2.0, 13);
  const std::vector<float> alpha_q = {8.0f}, alpha_f = {2.0f};
  const std::vector<std::string> mods = modules();
  auto peft = [&](const std::string& pre, const std::string& qn, const std::string& fn) {
    return std::vector<T>{{pre + qn + ".lora_A.weight", q.down, {q.rank, q.in}},
                          {pre + qn + ".lora_B.weight", q.up, {q.out, q.rank}},
                          {pre + qn + ".alpha", alpha_q, {}},
                          {pre + fn + ".lora_A.weight", f.down, {f.rank, f.in}},
                          {pre + fn + ".lora_B.weight", f.up, {f.out, f.rank}}};
  };
  std::vector<std::string> files = {
      write("release.safetensors", peft("", "blocks.0.self_attn.q", "blocks.1.ffn.0")),
      write("diffusers.safetensors", peft("transformer.", "blocks.0.attn1.to_q", "blocks.1.ffn.net.0.proj")),
      write("comfy.safetensors", peft("diffusion_model.", "blocks.0.self_attn.q", "blocks.1.ffn.0")),
      write("kohya.safetensors", {{"lora_unet_blocks_0_self_attn_q.lora_down.weight", q.down, {q.rank, q.in}},
                                  {"lora_unet_blocks_0_self_attn_q.lora_up.weight", q.up, {q.out, q.rank}},
                                  {"lora_unet_blocks_0_self_attn_q.alpha", alpha_q, {}},
                                  {"lora_unet_blocks_1_ffn_0.lora_down.weight", f.down, {f.rank, f.in}},
                                  {"lora_unet_blocks_1_ffn_0.lora_up.weight", f.up, {f.out, f.rank}},
                                  {"lora_unet_blocks_1_ffn_0.alpha", alpha_f, {}}})};
  for (const std::string& path : files) {
    SCOPED_TRACE(path);
    const LoraAdapter a = io::read_lora(path, 0.5, mods);
    ASSERT_EQ(a.layers.size(), 2u);
    EXPECT_EQ(a.scale, 0.5);
    for (const LoraLayer& l : a.layers) {
      const LoraLayer& want = l.module == q.module ? q : f;
      EXPECT_EQ(l.module, want.module);
      EXPECT_EQ(l.rank, want.rank);
      EXPECT_EQ(l.down, want.down);
      EXPECT_EQ(l.up, want.up);
      EXPECT_EQ(l.alpha, want.alpha);  // f has no alpha in the PEFT files: its rank, 2
    }
  }
  // BF16 on disk: the values rounded once.
  const LoraAdapter b = io::read_lora(write("bf16.safetensors", peft("", "blocks.0.self_attn.q", "blocks.1.ffn.0"), DType::BF16),
                                      1.0, mods);
  for (size_t i = 0; i < q.down.size(); ++i) ASSERT_EQ(b.layers[0].down[i], bf16_to_float(float_to_bf16(q.down[i])));
}

TEST_F(LoraFiles, RefusesWhatDoesNotFit) {
  const std::vector<std::string> mods = modules();
  const LoraLayer q = layer("blocks.0.self_attn.q", c.dim, c.dim, 4, 4.0, 11);
  const std::vector<std::pair<std::vector<T>, std::string>> cases = {
      {{{"blocks.0.self_attn.q.lora_A.weight", q.down, {q.rank, q.in}}}, "but no up"},
      {{{"blocks.0.self_attn.q.lora_B.weight", q.up, {q.out, q.rank}}}, "but no down"},
      {{{"blocks.0.self_attn.q.lora_A.weight", q.down, {q.rank, q.in}},
        {"blocks.0.self_attn.q.lora_B.weight", std::vector<float>(size_t(q.out * 2)), {q.out, 2}}},
       "rank 4, the up tensor 2"},
      {{{"blocks.7.mlp.fc1.lora_A.weight", q.down, {q.rank, q.in}}}, "not a linear layer of this model"},
      {{{"blocks.0.self_attn.q.weight", q.down, {q.rank, q.in}}}, "no LoRA layout"},
      {{{"blocks.0.self_attn.q.lora_A.weight", q.down, {q.rank, q.in}},
        {"blocks.0.self_attn.q.lora_B.weight", q.up, {q.out, q.rank}},
        {"blocks.0.self_attn.q.alpha", {1.0f, 2.0f}, {2}}},
       "one finite value"},
  };
  int k = 0;
  for (const auto& [ts, needle] : cases) {
    const std::string path = write("bad" + std::to_string(k++) + ".safetensors", ts);
    try {
      io::read_lora(path, 1.0, mods);
      ADD_FAILURE() << "accepted " << path;
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(io::read_lora((dir.path / "missing.safetensors").string(), 1.0, mods), std::runtime_error);
}

// The command line: scale 0 and an adapter whose up is zero leave the video bit for bit; a
// real adapter changes it, and equals the model whose weights were merged by hand.
TEST_F(LoraFiles, CommandLineMergesAtLoad) {
  const DiTConfig tiny = pipeline::tiny_config();
  DiTWeights w = DiTWeights::random(tiny, 1234);  // builtin:tiny's weights
  LoraLayer l = layer("blocks.0.self_attn.o", tiny.dim, tiny.dim, 2, 2.0, 21);
  const std::string lora = write("o.safetensors", {{"blocks.0.self_attn.o.lora_A.weight", l.down, {l.rank, l.in}},
                                                   {"blocks.0.self_attn.o.lora_B.weight", l.up, {l.out, l.rank}}});
  std::vector<float> zero(l.up.size(), 0.0f);
  const std::string none = write("zero.safetensors", {{"blocks.0.self_attn.o.lora_A.weight", l.down, {l.rank, l.in}},
                                                      {"blocks.0.self_attn.o.lora_B.weight", zero, {l.out, l.rank}}});
  LoraAdapter a;
  a.path = lora;
  a.scale = 0.5;
  a.layers = {l};
  merge_lora(w, tiny, a);
  const std::string merged = (dir.path / "merged.h5").string();
  io::save_weights(merged, tiny, w, io::DiskType::Float32);
  auto run = [&](const std::string& model, const std::string& extra, const std::string& name) {
    const std::string out = (dir.path / name).string();
    const auto r = test::run_ditgen("generate --model " + model + " --frames 2 --steps 2 --seed 3 --attn dense --cache off "
                                    "--threads 1 --latents-out " + out + extra);
    EXPECT_EQ(r.status, 0) << r.output;
    return io::SafetensorsFile::open(out).to_float("latents");
  };
  const auto plain = run("builtin:tiny", "", "plain.safetensors");
  EXPECT_EQ(run("builtin:tiny", " --lora " + lora + ":0", "s0.safetensors"), plain);
  EXPECT_EQ(run("builtin:tiny", " --lora " + none, "z.safetensors"), plain);
  const auto with = run("builtin:tiny", " --lora " + lora + ":0.5", "l.safetensors");
  EXPECT_NE(with, plain);
  EXPECT_EQ(with, run(merged, "", "m.safetensors"));
  const auto bad = test::run_ditgen("generate --model builtin:tiny --frames 2 --steps 2 --lora " + lora +
                                    ":x --latents-out " + (dir.path / "x.safetensors").string());
  EXPECT_EQ(bad.status, 2) << bad.output;
  EXPECT_NE(bad.output.find("FILE:SCALE"), std::string::npos) << bad.output;
}

// An adapter trained for a sparse attention says so in its metadata ("ditgen.attention"):
// generate runs it when no --attn is given, an explicit --attn wins, adapters that disagree are
// refused, and one merged at scale 0 chooses nothing.
TEST_F(LoraFiles, TheAdaptersAttentionIsGeneratesDefault) {
  const DiTConfig tiny = pipeline::tiny_config();
  const LoraLayer l = layer("blocks.0.self_attn.o", tiny.dim, tiny.dim, 2, 2.0, 21);
  const std::vector<T> tensors = {{"blocks.0.self_attn.o.lora_A.weight", l.down, {l.rank, l.in}},
                                  {"blocks.0.self_attn.o.lora_B.weight", l.up, {l.out, l.rank}}};
  const std::string trained = "radial3d:decay=0.5,dense_steps=1,dense_layers=0";
  const std::string a = write("a.safetensors", tensors, DType::F32, {{"ditgen.attention", trained}});
  const std::string b = write("b.safetensors", tensors, DType::F32, {{"ditgen.attention", "dense"}});
  const std::string plain = write("p.safetensors", tensors);
  int k = 0;
  auto attn_of = [&](const std::string& extra) {
    const std::string json = (dir.path / ("r" + std::to_string(k++) + ".json")).string();
    const auto r = test::run_ditgen("generate --model builtin:tiny --frames 2 --steps 2 --threads 1 --cache off --latents-out " +
                                    (dir.path / ("l" + std::to_string(k) + ".safetensors")).string() + " --json " + json + extra);
    EXPECT_EQ(r.status, 0) << r.output;
    std::ifstream f(json);
    return nlohmann::json::parse(f).at("attn").get<std::string>();
  };
  const std::string from_adapter = attn_of(" --lora " + a);
  EXPECT_EQ(from_adapter.rfind("radial3d:", 0), 0u) << from_adapter;
  EXPECT_NE(from_adapter.find("dense_steps=1"), std::string::npos) << from_adapter;
  EXPECT_NE(from_adapter.find("dense_layers=0"), std::string::npos) << from_adapter;
  EXPECT_EQ(attn_of(" --lora " + a + " --attn dense").rfind("dense:", 0), 0u);
  EXPECT_EQ(attn_of(" --lora " + b + " --lora " + a + ":0").rfind("dense:", 0), 0u);
  const std::string untrained = attn_of(" --lora " + plain);
  EXPECT_NE(untrained.find("refresh=4"), std::string::npos) << untrained;  // generate's own default
  const auto clash = test::run_ditgen("generate --model builtin:tiny --frames 2 --steps 2 --lora " + a + " --lora " + b +
                                      " --latents-out " + (dir.path / "x.safetensors").string());
  EXPECT_EQ(clash.status, 2) << clash.output;
  EXPECT_NE(clash.output.find("different attention"), std::string::npos) << clash.output;
}

// An adapter trained with RIFLEx says so in its metadata ("ditgen.riflex"): generate runs its
// pair when no --riflex is given, --riflex K or off wins, adapters that disagree are refused, and
// a pair the model lacks or a value that is no pair is refused with the file's name.
TEST_F(LoraFiles, TheAdaptersRiflexPairIsGeneratesDefault) {
  const DiTConfig tiny = pipeline::tiny_config();
  const LoraLayer l = layer("blocks.0.self_attn.o", tiny.dim, tiny.dim, 2, 2.0, 22);
  const std::vector<T> tensors = {{"blocks.0.self_attn.o.lora_A.weight", l.down, {l.rank, l.in}},
                                  {"blocks.0.self_attn.o.lora_B.weight", l.up, {l.out, l.rank}}};
  const int pairs = tiny.rope_dims_t() / 2;
  ASSERT_GE(pairs, 2);
  const std::string two = write("two.safetensors", tensors, DType::F32, {{"ditgen.riflex", "2"}});
  const std::string one = write("one.safetensors", tensors, DType::F32, {{"ditgen.riflex", "1"}});
  const std::string beyond =
      write("beyond.safetensors", tensors, DType::F32, {{"ditgen.riflex", std::to_string(pairs + 1)}});
  const std::string junk = write("junk.safetensors", tensors, DType::F32, {{"ditgen.riflex", "3x"}});
  int k = 0;
  auto generate = [&](const std::string& extra) {
    const std::string json = (dir.path / ("r" + std::to_string(k++) + ".json")).string();
    const auto r = test::run_ditgen("generate --model builtin:tiny --frames 2 --steps 2 --threads 1 --cache off --latents-out " +
                                    (dir.path / ("l" + std::to_string(k) + ".safetensors")).string() + " --json " + json + extra);
    nlohmann::json riflex;
    if (r.status == 0) riflex = nlohmann::json::parse(std::ifstream(json)).at("riflex");
    return std::pair{r, riflex};
  };
  auto [r, riflex] = generate(" --lora " + two);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(riflex, 2);
  EXPECT_NE(r.output.find("RIFLEx pair 2: the adapter's"), std::string::npos) << r.output;
  std::tie(r, riflex) = generate(" --lora " + two + " --riflex 1");
  EXPECT_EQ(riflex, 1) << r.output;
  std::tie(r, riflex) = generate(" --lora " + two + " --riflex off");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(riflex.is_null()) << riflex;
  std::tie(r, riflex) = generate(" --lora " + one + ":0 --lora " + two);  // scale 0 chooses nothing
  EXPECT_EQ(riflex, 2) << r.output;
  std::tie(r, riflex) = generate(" --lora " + one + " --lora " + two);
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("different RIFLEx pairs (1, 2): choose one with --riflex"), std::string::npos) << r.output;
  std::tie(r, riflex) = generate(" --lora " + beyond);
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("RIFLEx pair " + std::to_string(pairs + 1) + " is out of range"), std::string::npos) << r.output;
  std::tie(r, riflex) = generate(" --lora " + junk);
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("junk.safetensors: metadata ditgen.riflex '3x' is not a rotary pair"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace ditgen
