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
#include <fstream>
#include <string>
#include <tuple>
#include <vector>

#include "dit/gemm_bf16.h"
#include "eval/metrics.h"
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

TEST_F(WanVae, TiledDecodeBlendsCloseToWholeFrames) {
  const Golden z = golden(*decode_, "z_T3_s");  // 6 x 10 latent
  const LatentShape shape = latent_of(z);
  const Frames whole = vae_->decode(z.values.data(), shape, 16);
  // One tile covering the latent is the whole-frame decode.
  vae_->tiling = vae::VaeTiling{10, 2};
  EXPECT_EQ(vae_->decode(z.values.data(), shape, 16).data, whole.data);
  // 2 x 3 tiles of 4 latent pixels sharing 2: close, not equal (a tile sees zeros past its edges
  // and only its own pixels in the middle block's attention).
  vae_->tiling = vae::VaeTiling{4, 2};
  const Frames tiled = vae_->decode(z.values.data(), shape, 16);
  vae_->tiling = {};
  ASSERT_EQ(tiled.data.size(), whole.data.size());
  std::vector<float> a(whole.data.begin(), whole.data.end()), b(tiled.data.begin(), tiled.data.end());
  const double psnr = eval::psnr(a.data(), b.data(), int64_t(a.size()), 255.0);
  std::cout << "tiled 4:2 against whole frames: " << psnr << " dB\n";
  EXPECT_NE(tiled.data, whole.data);
  EXPECT_GT(psnr, 15.0);
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

// The test weights written to `path` without `drop`, `reshape_name` given `new_shape` (values
// 0.5), every name passed through `rename`.
void write_copy(const std::string& path, const std::string& drop, const std::string& reshape_name = "",
                const std::vector<int64_t>& new_shape = {}, std::string (*rename)(std::string) = nullptr) {
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
    out.push_back({rename ? rename(t.name) : t.name, DType::F32, shape, keep.back().data(), nullptr});
  }
  io::write_safetensors(path, out);
}

// A copy of the weights with one tensor changed.
std::string altered(const std::string& drop, const std::string& reshape_name = "", std::vector<int64_t> new_shape = {}) {
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("ditgen_vae_" + std::to_string(::getpid()) + "_" + drop + reshape_name + ".safetensors"))
                               .string();
  write_copy(path, drop, reshape_name, new_shape);
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

// The release's name as diffusers' conversion (scripts/convert_wan_to_diffusers.py, convert_vae)
// renames it, written out for the release's layout as that script does: decoder resnets at
// upsamples 0-2, 4-6, 8-10, 12-14 (up blocks 0-3), upsamplers at 3, 7 and 11.
std::string diffusers_name(std::string n) {
  const auto starts = [&](const std::string& p) { return n.compare(0, p.size(), p) == 0; };
  const auto inner = [](std::string rest) {
    for (const auto& [from, to] : {std::pair<std::string, std::string>{"residual.0.", "norm1."}, {"residual.2.", "conv1."},
                                   {"residual.3.", "norm2."}, {"residual.6.", "conv2."}, {"shortcut.", "conv_shortcut."}})
      if (rest.compare(0, from.size(), from) == 0) return to + rest.substr(from.size());
    return rest;
  };
  if (starts("conv1.")) return "quant_conv." + n.substr(6);
  if (starts("conv2.")) return "post_quant_conv." + n.substr(6);
  for (const std::string side : {"encoder.", "decoder."}) {
    if (!starts(side)) continue;
    const std::string rest = n.substr(side.size());
    if (rest.compare(0, 6, "conv1.") == 0) return side + "conv_in." + rest.substr(6);
    if (rest == "head.0.gamma") return side + "norm_out.gamma";
    if (rest.compare(0, 7, "head.2.") == 0) return side + "conv_out." + rest.substr(7);
    if (rest.compare(0, 9, "middle.1.") == 0) return side + "mid_block.attentions.0." + rest.substr(9);
    if (rest.compare(0, 9, "middle.0.") == 0) return side + "mid_block.resnets.0." + inner(rest.substr(9));
    if (rest.compare(0, 9, "middle.2.") == 0) return side + "mid_block.resnets.1." + inner(rest.substr(9));
  }
  if (starts("encoder.downsamples.")) {
    const size_t dot = n.find('.', 20);
    return "encoder.down_blocks." + n.substr(20, dot - 20) + "." + inner(n.substr(dot + 1));
  }
  if (starts("decoder.upsamples.")) {
    const size_t dot = n.find('.', 18);
    const int i = std::stoi(n.substr(18, dot - 18));
    const std::string rest = n.substr(dot + 1);
    if (i % 4 == 3) return "decoder.up_blocks." + std::to_string(i / 4) + ".upsamplers.0." + rest;
    return "decoder.up_blocks." + std::to_string(i / 4) + ".resnets." + std::to_string(i % 4) + "." + inner(rest);
  }
  return n;
}

// A diffusers-format model folder: vae/diffusion_pytorch_model.safetensors (the test weights under
// diffusers' names, all but `drop`) and vae/config.json.
std::filesystem::path diffusers_folder(const std::string& tag, const std::string& config, const std::string& drop = "") {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("ditgen_vae_diffusers_" + std::to_string(::getpid()) + "_" + tag);
  fs::create_directories(dir / "vae");
  fs::create_directories(dir / "transformer");
  write_copy((dir / "vae" / "diffusion_pytorch_model.safetensors").string(), drop, "", {}, diffusers_name);
  std::ofstream(dir / "vae" / "config.json") << config;
  return dir;
}

const char kDiffusersConfig[] = R"({"_class_name": "AutoencoderKLWan", "z_dim": 16,
  "latents_mean": [-0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
                   0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921],
  "latents_std": [2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
                  3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.916]})";

TEST(WanVaeFile, ReadsADiffusersFolder) {
  namespace fs = std::filesystem;
  const fs::path dir = diffusers_folder("ok", kDiffusersConfig);
  const std::string file = (dir / "vae" / "diffusion_pytorch_model.safetensors").string();
  EXPECT_EQ(io::locate_wan_vae(dir.string()), file);
  EXPECT_EQ(io::locate_wan_vae((dir / "transformer").string()), file);
  const auto release = io::load_wan_vae(kWeights, DType::F32), diffusers = io::load_wan_vae(file, DType::F32);
  EXPECT_EQ(diffusers->decoder.layers.size(), release->decoder.layers.size());
  EXPECT_EQ(diffusers->encoder.layers.size(), release->encoder.layers.size());
  const io::SafetensorsFile g = io::SafetensorsFile::open(kDir + "tiny_vae_decode.safetensors");
  const Golden z = golden(g, "z_T5");
  EXPECT_EQ(decode_floats(*diffusers, z), decode_floats(*release, z));  // the same weights, bit for bit
  fs::remove_all(dir);
}

TEST(WanVaeFile, RefusesADiffusersFolderThatIsNotWan21) {
  namespace fs = std::filesystem;
  std::string other_mean = kDiffusersConfig;
  other_mean.replace(other_mean.find("-0.7571"), 7, "-0.5000");
  std::string other_class = kDiffusersConfig;
  other_class.replace(other_class.find("AutoencoderKLWan"), 16, "AutoencoderKL");
  for (const auto& [tag, config, drop, needle] :
       {std::tuple<std::string, std::string, std::string, std::string>{"mean", other_mean, "", "latents_mean"},
        {"class", other_class, "", "AutoencoderKL\""},
        {"json", "{not json", "", "is not JSON"},
        {"drop", kDiffusersConfig, "decoder.upsamples.4.shortcut.weight", "decoder.upsamples.4.shortcut.weight"}}) {
    const fs::path dir = diffusers_folder(tag, config, drop);
    try {
      io::load_wan_vae(io::locate_wan_vae(dir.string()), DType::F32);
      ADD_FAILURE() << tag;
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("diffusers"), std::string::npos) << e.what();
    }
    fs::remove_all(dir);
  }
}

}  // namespace
}  // namespace ditgen
