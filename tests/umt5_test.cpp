// The umT5 encoder against the official code: tests/data/wan/tiny_t5*.safetensors hold a narrow
// encoder of the released structure (vocab 320, dim 64, dim_attn 48, dim_ffn 96, 4 heads, 3
// blocks, 32 buckets) with random weights under the release's names, and the official
// T5EncoderModel's states for inputs of 1, 7, 20, 45 and 200 tokens padded to 512 with the mask
// (tools/wan/make_t5_goldens.py, docs/wan-t5-reference.md). The C++ encoder computes only the
// real tokens; its states must be within 1e-3 of the largest golden value in float32, per block
// and at the end. Files that do not fit the configuration their shapes give are refused with the
// tensor named.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "cond/umt5.h"
#include "dit/gemm_bf16.h"
#include "io/safetensors.h"

namespace ditgen::cond {
namespace {

const std::string kDir = std::string(DITGEN_SOURCE_DIR) + "/tests/data/wan/";
const std::vector<int> kLengths = {1, 7, 20, 45, 200};

double rel_error(const Tensor& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    num = std::max(num, std::fabs(double(a.data()[i]) - b[i]));
    den = std::max(den, std::fabs(double(b[i])));
  }
  return num / den;
}

std::vector<int32_t> golden_ids(const io::SafetensorsFile& g, int L) {
  const std::vector<float> f = g.to_float("ids." + std::to_string(L));  // I64, exact below 2^24
  return std::vector<int32_t>(f.begin(), f.end());
}

// Worst relative error over every length's states, and over the 20-token input's blocks.
std::pair<double, double> golden_errors(DType dtype) {
  const io::SafetensorsFile g = io::SafetensorsFile::open(kDir + "tiny_t5_goldens.safetensors");
  const UmT5Encoder e = UmT5Encoder::load(kDir + "tiny_t5.safetensors", dtype);
  double states = 0, blocks = 0;
  for (int L : kLengths) {
    std::vector<Tensor> captured;
    const Tensor s = e.encode(golden_ids(g, L), &captured);
    EXPECT_EQ(s.shape(), (std::vector<int64_t>{L, 64}));
    const double err = rel_error(s, g.to_float("states." + std::to_string(L)));
    std::printf("%s, %d tokens: states %.3g\n", dtype_name(dtype), L, err);
    states = std::max(states, err);
    if (L != 20) continue;
    EXPECT_EQ(captured.size(), 3u);
    for (size_t b = 0; b < captured.size(); ++b) {
      const double eb = rel_error(captured[b], g.to_float("block." + std::to_string(b)));
      std::printf("%s, %d tokens: block %zu %.3g\n", dtype_name(dtype), L, b, eb);
      blocks = std::max(blocks, eb);
    }
  }
  return {states, blocks};
}

TEST(UmT5, ConfigComesFromTheTensorShapes) {
  const UmT5Encoder e = UmT5Encoder::load(kDir + "tiny_t5.safetensors", DType::F32);
  const UmT5Config& c = e.config();
  EXPECT_EQ(c.vocab, 320);
  EXPECT_EQ(c.dim, 64);
  EXPECT_EQ(c.dim_attn, 48);
  EXPECT_EQ(c.dim_ffn, 96);
  EXPECT_EQ(c.num_heads, 4);
  EXPECT_EQ(c.head_dim(), 12);
  EXPECT_EQ(c.num_layers, 3);
  EXPECT_EQ(c.num_buckets, 32);
  EXPECT_EQ(umt5_tensor_table(c).size(), 1u + 3u * 10u + 1u);
}

TEST(UmT5, Float32MatchesTheOfficialEncoder) {
  const auto [states, blocks] = golden_errors(DType::F32);
  EXPECT_LE(states, 1e-3);
  EXPECT_LE(blocks, 1e-3);
}

TEST(UmT5, Bf16IsCloseToTheOfficialEncoder) {
  if (!gemm::bf16_gemm_available()) GTEST_SKIP() << "no AVX-512 BF16";
  // Every GEMM input rounded to bfloat16 (8 bits of mantissa): about 1e-2, as the DiT's bf16 path.
  const auto [states, blocks] = golden_errors(DType::BF16);
  EXPECT_LE(states, 3e-2);
  EXPECT_LE(blocks, 3e-2);
}

TEST(UmT5, EncodingTwiceGivesTheSameBits) {
  // The second run reads the weights again after their pages were dropped.
  const UmT5Encoder e = UmT5Encoder::load(kDir + "tiny_t5.safetensors", DType::F32);
  const std::vector<int32_t> ids = {5, 17, 300, 2, 1};
  const Tensor a = e.encode(ids), b = e.encode(ids);
  ASSERT_EQ(a.size(), b.size());
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.bytes()), 0);
}

TEST(UmT5, RefusesBadIds) {
  const UmT5Encoder e = UmT5Encoder::load(kDir + "tiny_t5.safetensors", DType::F32);
  EXPECT_THROW(e.encode({}), std::invalid_argument);
  EXPECT_THROW(e.encode(std::vector<int32_t>(513, 3)), std::invalid_argument);
  try {
    e.encode({3, 320, 1});
    FAIL() << "an id past the vocabulary was accepted";
  } catch (const std::out_of_range& x) {
    EXPECT_NE(std::string(x.what()).find("token id 320 at position 1"), std::string::npos) << x.what();
    EXPECT_NE(std::string(x.what()).find("[0, 320)"), std::string::npos) << x.what();
  }
  EXPECT_THROW(e.encode({-1}), std::out_of_range);
}

// The tiny weights rewritten with `edit` applied to the (name -> tensor) map; the error message
// of loading the result.
struct Stored {
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  std::vector<float> values;
  std::vector<int64_t> ints;
};
std::string load_error(const std::function<void(std::map<std::string, Stored>&)>& edit) {
  const io::SafetensorsFile f = io::SafetensorsFile::open(kDir + "tiny_t5.safetensors");
  std::map<std::string, Stored> t;
  for (const io::SafetensorsTensor& s : f.tensors()) t[s.name] = Stored{DType::F32, s.shape, f.to_float(s.name), {}};
  edit(t);
  std::vector<io::SafetensorsWriteTensor> w;
  for (auto& [name, s] : t) {
    io::SafetensorsWriteTensor x{name, s.dtype, s.shape, nullptr, nullptr};
    if (s.dtype == DType::I64) x.bytes = s.ints.data();
    else x.values = s.values.data();
    w.push_back(x);
  }
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("umt5_bad_" + std::to_string(::getpid()) + ".safetensors")).string();
  io::write_safetensors(path, w);
  std::string msg;
  try {
    UmT5Encoder::load(path, DType::F32);
  } catch (const std::runtime_error& e) {
    msg = e.what();
  }
  std::filesystem::remove(path);
  return msg;
}

TEST(UmT5, RefusesAMisShapedTensor) {
  const std::string m = load_error([](auto& t) {
    Stored& s = t.at("blocks.1.attn.k.weight");
    s.shape = {48, 60};
    s.values.resize(48 * 60);
  });
  EXPECT_NE(m.find("tensor 'blocks.1.attn.k.weight' has shape (48, 60), expected (48, 64)"), std::string::npos) << m;
  EXPECT_EQ(m.rfind("umT5 encoder file '", 0), 0u) << m;  // names the file
}

TEST(UmT5, RefusesAMissingTensor) {
  const std::string m = load_error([](auto& t) { t.erase("blocks.2.ffn.fc2.weight"); });
  EXPECT_NE(m.find("has no tensor 'blocks.2.ffn.fc2.weight'"), std::string::npos) << m;
  const std::string m2 = load_error([](auto& t) { t.erase("token_embedding.weight"); });
  EXPECT_NE(m2.find("has no tensor 'token_embedding.weight'"), std::string::npos) << m2;
}

TEST(UmT5, RefusesAWrongDtype) {
  const std::string m = load_error([](auto& t) {
    Stored& s = t.at("norm.weight");
    s.dtype = DType::I64;
    s.ints.assign(64, 1);
  });
  EXPECT_NE(m.find("tensor 'norm.weight' is I64, expected F32, BF16 or F16"), std::string::npos) << m;
}

TEST(UmT5, RefusesTensorsOfAnotherModel) {
  const std::string m = load_error([](auto& t) { t["pos_embedding.embedding.weight"] = Stored{DType::F32, {32, 4}, std::vector<float>(128), {}}; });
  EXPECT_NE(m.find("unexpected tensor 'pos_embedding.embedding.weight'"), std::string::npos) << m;
  // A fourth block that is only half there.
  const std::string m2 = load_error([](auto& t) { t["blocks.3.norm1.weight"] = Stored{DType::F32, {64}, std::vector<float>(64), {}}; });
  EXPECT_NE(m2.find("has no tensor 'blocks.3.attn.q.weight'"), std::string::npos) << m2;
}

TEST(UmT5, RefusesHeadsThatDoNotDivideTheAttentionWidth) {
  const std::string m = load_error([](auto& t) {
    for (int i = 0; i < 3; ++i) {
      Stored& s = t.at("blocks." + std::to_string(i) + ".pos_embedding.embedding.weight");
      s.shape = {32, 5};
      s.values.resize(32 * 5);
    }
  });
  EXPECT_NE(m.find("5 heads, which do not divide the attention width 48"), std::string::npos) << m;
}

TEST(UmT5, RefusesAComputeDtypeItDoesNotHave) {
  EXPECT_THROW(UmT5Encoder::load(kDir + "tiny_t5.safetensors", DType::F16), std::invalid_argument);
}

}  // namespace
}  // namespace ditgen::cond
