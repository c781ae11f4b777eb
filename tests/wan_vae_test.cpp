// The Wan2.1 VAE against the official vae.py (tests/data/wan/tiny_vae*, made by
// tools/wan/make_vae_goldens.py: docs/wan-vae-reference.md): a narrow VAE of the release's
// structure, every tensor random. Decoded frames for 1, 2 and 5 latent frames (the causal caches
// and the temporal upsampling's first frame are where ports go wrong) and a wider latent; the
// encoder's posterior mean. Bound: 1e-3 of the largest value (float32; the official code and
// this one differ only in summation order, about 1e-6). Then the bf16 path, the uint8 frames,
// the loader's refusals and `ditgen vae` end to end.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "dit/gemm_bf16.h"
#include "io/safetensors.h"
#include "io/wan_vae.h"
#include "tests/wan_golden.h"

namespace ditgen {
namespace {

const std::string kDir = std::string(DITGEN_SOURCE_DIR) + "/tests/data/wan/";
const std::string kWeights = kDir + "tiny_vae.safetensors";

struct Golden {
  std::vector<float> values;  // (T, H, W, C)
  std::vector<int64_t> shape; // [C, T, H, W]
};

Golden golden(const io::SafetensorsFile& f, const std::string& name) {
  Golden g;
  g.shape = f.tensor(name).shape;
  g.values = wan_golden::to_thwc(f.to_float(name), g.shape);
  return g;
}

LatentShape latent_of(const Golden& z) { return {int(z.shape[1]), int(z.shape[2]), int(z.shape[3])}; }

// Decoded float frames, concatenated (T, H, W, 3).
std::vector<float> decode_floats(const vae::WanVae& v, const Golden& z) {
  std::vector<float> out;
  v.decode_stream(z.values.data(), latent_of(z), [&](vae::Fmap&& f) { out.insert(out.end(), f.data.begin(), f.data.end()); });
  return out;
}

class WanVae : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    vae_ = io::load_wan_vae(kWeights, DType::F32).release();
    decode_ = new io::SafetensorsFile(io::SafetensorsFile::open(kDir + "tiny_vae_decode.safetensors"));
    encode_ = new io::SafetensorsFile(io::SafetensorsFile::open(kDir + "tiny_vae_encode.safetensors"));
  }
  static void TearDownTestSuite() {
    delete vae_;
    delete decode_;
    delete encode_;
  }
  static vae::WanVae* vae_;
  static io::SafetensorsFile* decode_;
  static io::SafetensorsFile* encode_;
};
vae::WanVae* WanVae::vae_ = nullptr;
io::SafetensorsFile* WanVae::decode_ = nullptr;
io::SafetensorsFile* WanVae::encode_ = nullptr;

TEST_F(WanVae, StructureFromTheFile) {
  EXPECT_EQ(vae_->z_dim, 16);
  EXPECT_TRUE(vae_->has_encoder());
  // conv1, middle (3), 4 stages of 3 residual blocks and 3 resamples, head.
  EXPECT_EQ(vae_->decoder.layers.size(), 1u + 3 + 12 + 3 + 1);
}

TEST_F(WanVae, DecodeMatchesOfficial) {
  for (const std::string c : {"T1", "T2", "T5", "T3_s"}) {
    const Golden z = golden(*decode_, "z_" + c), want = golden(*decode_, "video_" + c);
    ASSERT_EQ(want.shape[1], 1 + 4 * (z.shape[1] - 1)) << c;
    const std::vector<float> got = decode_floats(*vae_, z);
    ASSERT_EQ(got.size(), want.values.size()) << c;
    const double err = wan_golden::rel_error(got.data(), want.values);
    EXPECT_LT(err, 1e-3) << c;
    std::cout << "decode " << c << ": " << err << " relative\n";
  }
}

TEST_F(WanVae, DecodeTwiceGivesTheSameFrames) {
  // The causal caches are reset between calls.
  const Golden z = golden(*decode_, "z_T2");
  EXPECT_EQ(decode_floats(*vae_, z), decode_floats(*vae_, z));
}

TEST_F(WanVae, EightBitFramesAsWanWritesThem) {
  const Golden z = golden(*decode_, "z_T2"), want = golden(*decode_, "video_T2");
  const Frames f = vae_->decode(z.values.data(), latent_of(z), 16);
  ASSERT_EQ(f.frames, 5);
  ASSERT_EQ(f.height, 32);
  ASSERT_EQ(f.width, 48);
  ASSERT_EQ(f.channels, 3);
  int off_by_more_than_one = 0;
  for (size_t i = 0; i < want.values.size(); ++i) {
    const float c = std::min(1.0f, std::max(-1.0f, want.values[i]));
    const int expect = int((c + 1.0f) / 2.0f * 255.0f);  // truncation, as Wan's cache_video
    off_by_more_than_one += std::abs(int(f.data[i]) - expect) > 1;
  }
  EXPECT_EQ(off_by_more_than_one, 0);
  EXPECT_THROW(vae_->decode(z.values.data(), latent_of(z), 12), std::invalid_argument);
}

TEST_F(WanVae, EncodeMatchesOfficial) {
  for (const auto& [video, mu] : {std::pair{"video", "mu"}, std::pair{"video_1", "mu_1"}}) {
    const Golden x = golden(*encode_, video), want = golden(*encode_, mu);
    std::vector<vae::Fmap> frames;
    const int64_t px = x.shape[2] * x.shape[3];
    for (int64_t t = 0; t < x.shape[1]; ++t) {
      vae::Fmap f(int(x.shape[2]), int(x.shape[3]), 3);
      std::copy_n(x.values.data() + t * px * 3, px * 3, f.data.data());
      frames.push_back(std::move(f));
    }
    LatentShape s;
    const std::vector<float> got = vae_->encode(frames, &s);
    EXPECT_EQ(s, latent_of(want));
    ASSERT_EQ(got.size(), want.values.size());
    const double err = wan_golden::rel_error(got.data(), want.values);
    EXPECT_LT(err, 1e-3) << video;
    std::cout << "encode " << video << ": " << err << " relative\n";
  }
}

TEST_F(WanVae, Bf16DecodeStaysClose) {
  if (!gemm::bf16_gemm_available()) GTEST_SKIP() << "no AVX-512 BF16 on this CPU";
  const auto v = io::load_wan_vae(kWeights, DType::BF16);
  const Golden z = golden(*decode_, "z_T5"), want = golden(*decode_, "video_T5");
  const std::vector<float> got = decode_floats(*v, z);
  const double err = wan_golden::rel_error(got.data(), want.values);
  // bf16 inputs and weights of about 20 convolutions in a row: a few 1e-2 at most.
  EXPECT_LT(err, 5e-2);
  EXPECT_GT(err, 0.0);  // it did run in bf16
  std::cout << "decode T5 bf16: " << err << " relative\n";
}

// A copy of the weights with one tensor changed.
std::string altered(const std::string& drop, const std::string& reshape_name = "", std::vector<int64_t> new_shape = {}) {
  const io::SafetensorsFile f = io::SafetensorsFile::open(kWeights);
  std::vector<std::vector<float>> keep;
  std::vector<io::SafetensorsWriteTensor> out;
  for (const io::SafetensorsTensor& t : f.tensors()) {
    if (t.name == drop) continue;
    keep.push_back(f.to_float(t.name));
    std::vector<int64_t> shape = t.shape;
    if (t.name == reshape_name) {
      shape = new_shape;
      int64_t n = 1;
      for (int64_t d : shape) n *= d;
      keep.back().resize(size_t(n), 0.5f);
    }
    out.push_back({t.name, DType::F32, shape, keep.back().data(), nullptr});
  }
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("ditgen_vae_" + std::to_string(::getpid()) + "_" + drop + reshape_name + ".safetensors"))
                               .string();
  io::write_safetensors(path, out);
  return path;
}

void expect_refused(const std::string& path, const std::string& needle) {
  try {
    io::load_wan_vae(path, DType::F32);
    ADD_FAILURE() << "loaded " << path;
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
  std::filesystem::remove(path);
}

TEST(WanVaeFile, RefusesMissingAndMisShapedTensors) {
  expect_refused(altered("decoder.upsamples.4.residual.6.bias"), "decoder.upsamples.4.residual.6.bias");
  expect_refused(altered("decoder.head.0.gamma"), "decoder.head.0.gamma");
  expect_refused(altered("", "decoder.middle.0.residual.2.weight", {16, 16, 3, 3, 2}), "decoder.middle.0.residual.2.weight");
  expect_refused(altered("", "conv2.weight", {16, 8, 1, 1, 1}), "conv2.weight");
  expect_refused(altered("", "decoder.upsamples.1.residual.0.gamma", {7, 1, 1, 1}), "decoder.upsamples.1.residual.0.gamma");
}

TEST(WanVaeFile, LocatesTheReleaseName) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("ditgen_vae_dir_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  EXPECT_THROW(io::locate_wan_vae(dir.string()), io::MissingFile);
  std::ofstream(dir / "Wan2.1_VAE.pth") << "pickle";
  try {
    io::locate_wan_vae(dir.string());
    ADD_FAILURE();
  } catch (const io::MissingFile& e) {
    EXPECT_NE(std::string(e.what()).find("convert_pth.py"), std::string::npos) << e.what();
  }
  fs::copy_file(kWeights, dir / "Wan2.1_VAE.safetensors");
  EXPECT_EQ(io::locate_wan_vae(dir.string()), (dir / "Wan2.1_VAE.safetensors").string());
  fs::remove_all(dir);
}

}  // namespace
}  // namespace ditgen
