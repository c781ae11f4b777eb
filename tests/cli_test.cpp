// The ditgen binary end to end on a tiny random model written by the test itself.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "apps/cli_common.h"
#include "attention/spec.h"
#include "io/weights_h5.h"
#include "tests/model_util.h"
#include "tests/test_util.h"

namespace fs = std::filesystem;

namespace ditgen {
namespace {

using test::run_ditgen;

class Cli : public ::testing::Test {
 protected:
  void SetUp() override {
    DiTConfig c = test::small_config();
    c.sample_steps = 3;
    DiTWeights w = DiTWeights::random(c, 11);
    model = dir / "tiny.h5";
    io::save_weights(model, c, w, io::DiskType::Float16, false);
  }
  size_t files_in_dir() const {
    return size_t(std::distance(fs::directory_iterator(dir.path), fs::directory_iterator{}));
  }
  test::TempDir dir;
  std::string model;
};

TEST_F(Cli, GenerateWritesVideoFramesAndJson) {
  const std::string out = dir / "v.mp4", json = dir / "run.json", frames = dir / "frames", sheet = dir / "sheet.png";
  auto r = run_ditgen("generate --model " + model + " --labels 3,7 --frames 4 --steps 3 --cfg 4 --seed 1 --threads 2 --out " +
                      out + " --frames-dir " + frames + " --sheet " + sheet + " --json " + json);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_GT(fs::file_size(out), 0u);
  EXPECT_GT(fs::file_size(sheet), 0u);
  for (int t = 0; t < 4; ++t) EXPECT_TRUE(fs::exists(frames + "/frame_000" + std::to_string(t) + ".png"));
  std::ifstream f(json);
  const auto j = nlohmann::json::parse(f);
  for (const char* key : {"attn", "seconds", "seconds_per_step", "attention_seconds", "linear_seconds", "tokens", "density",
                          "peak_rss_mb"})
    EXPECT_TRUE(j.contains(key)) << key;
  EXPECT_EQ(j["tokens"], 4 * 4 * 4);
  // The default attention, spelled out in full.
  EXPECT_EQ(j["attn"], attn::make_backend(app::default_generate_attn(attn::Isa::Auto))->spec());
  EXPECT_EQ(app::default_generate_attn(attn::Isa::Portable), app::kDefaultGenerateAttn);  // --isa given: followed
  if (attn::isa_supported(attn::Isa::Avx512Bf16)) {
    EXPECT_NE(j["attn"].get<std::string>().find("isa=avx512bf16"), std::string::npos) << j["attn"];
  }
  // The default step cache; three steps leave nothing to skip (warm-up, rate, last step).
  EXPECT_EQ(j["cache"], sampler::CacheSpec::parse(app::kDefaultGenerateCache).str());
  EXPECT_EQ(j["skipped_steps"], nlohmann::json::array());
  EXPECT_EQ(j["model_steps"], 3);
  EXPECT_GT(j["density"].get<double>(), 0.0);
  EXPECT_TRUE(j["attn_report"].is_object());
  // Per layer: the first layer dense, the second under one frame (16 tokens) plus the first
  // frame: 1 + 2 + 2 + 2 of 4 x 4 frame pairs.
  const auto w = run_ditgen("generate --model " + model + " --labels 3,7 --frames 4 --steps 3 --seed 1 --attn " +
                            "window:tile=1x4x4,window=1x1x1,block=16,dense_steps=0,dense_layers=1 --out " +
                            (dir / "w.mkv") + " --json " + (dir / "w.json"));
  ASSERT_EQ(w.status, 0) << w.output;
  std::ifstream fw(dir / "w.json");
  const auto jw = nlohmann::json::parse(fw);
  ASSERT_EQ(jw["layer_density"].size(), 2u);
  EXPECT_EQ(jw["layer_density"][0], 1.0);
  EXPECT_DOUBLE_EQ(jw["layer_density"][1].get<double>(), 7.0 / 16);
  const auto d = run_ditgen("generate --model " + model + " --labels 3,7 --frames 4 --steps 3 --seed 1 --threads 2 --attn dense --out " +
                            (dir / "d.mkv") + " --json " + (dir / "d.json"));
  ASSERT_EQ(d.status, 0) << d.output;
  std::ifstream fd(dir / "d.json");
  const auto jd = nlohmann::json::parse(fd);
  EXPECT_EQ(jd["density"], 1.0);
  EXPECT_EQ(jd["attn"], "dense:block=64,isa=auto");
}

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), {});
}

TEST_F(Cli, GenerateIsDeterministicAndImagesUseTheSamePath) {
  // Containers embed random UIDs, so compare the PNG frames bit for bit.
  const std::string common = "generate --model " + model + " --labels 1,2 --frames 3 --steps 2 --seed 5 --threads 1 ";
  ASSERT_EQ(run_ditgen(common + "--out " + (dir / "a.mkv") + " --frames-dir " + (dir / "fa")).status, 0);
  ASSERT_EQ(run_ditgen(common + "--out " + (dir / "b.mkv") + " --frames-dir " + (dir / "fb")).status, 0);
  for (int t = 0; t < 3; ++t) {
    const std::string name = "/frame_000" + std::to_string(t) + ".png";
    EXPECT_EQ(slurp(dir / "fa" + name), slurp(dir / "fb" + name)) << name;
  }
  // A different seed gives a different video.
  ASSERT_EQ(run_ditgen("generate --model " + model + " --labels 1,2 --frames 3 --steps 2 --seed 6 --threads 1 --out " +
                       (dir / "c.mkv") + " --frames-dir " + (dir / "fc")).status, 0);
  EXPECT_NE(slurp(dir / "fa/frame_0000.png"), slurp(dir / "fc/frame_0000.png"));
  // T = 1 writes a single PNG.
  const std::string img = dir / "img.png";
  auto r = run_ditgen("generate --model " + model + " --labels 1,2 --frames 1 --steps 2 --out " + img);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(slurp(img).substr(1, 3), "PNG");
}

TEST_F(Cli, MasksPrintsEveryMapWithItsDensities) {
  // Three whole frames (clamped at the ends) plus the first frame, 16 frames of 16 x 16 tokens:
  // query frames 0 and 1 see frames 0-2, every other frame sees four, so 62 of 256 frame pairs.
  auto r = run_ditgen("masks --attn window:tile=1x16x16,window=3x1x1 --frames 16 --json");
  ASSERT_EQ(r.status, 0) << r.output;
  const auto j = nlohmann::json::parse(r.output);
  EXPECT_EQ(j["tokens"], 16 * 256);
  ASSERT_EQ(j["maps"].size(), 1u);
  EXPECT_DOUBLE_EQ(j["maps"][0]["pair_density"].get<double>(), 62.0 / 256);
  EXPECT_DOUBLE_EQ(j["maps"][0]["block_density"].get<double>(), 62.0 / 256);
  EXPECT_EQ(j["maps"][0]["partial_fraction"], 0.0);
  r = run_ditgen("masks --attn svg2 --frames 16");  // maps made per call: said, not an empty table
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("(no maps: this method's maps are made per call"), std::string::npos) << r.output;
  r = run_ditgen("masks --attn window:sparkle=1 --frames 16");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("has no key 'sparkle'"), std::string::npos) << r.output;
}

TEST_F(Cli, CalibrateWritesAFileThatParoRuns) {
  const std::string calib = dir / "paro.json", json = dir / "run.json";
  auto r = run_ditgen("calibrate --model " + model + " --labels 3,7 --frames 4 --steps 2 --block 16 --out " + calib);
  ASSERT_EQ(r.status, 0) << r.output;
  ASSERT_TRUE(fs::exists(calib));
  r = run_ditgen("generate --model " + model + " --labels 3,7 --frames 4 --steps 2 --attn paro:calib=" + calib +
                 ",block=16,dense_steps=0,dense_layers=0 --out " + (dir / "v.mkv") + " --json " + json);
  ASSERT_EQ(r.status, 0) << r.output;
  std::ifstream f(json);
  const auto j = nlohmann::json::parse(f);
  EXPECT_NE(j["attn"].get<std::string>().find("calib=" + calib), std::string::npos) << j["attn"];
  EXPECT_GT(j["density"].get<double>(), 0.0);
  EXPECT_LE(j["density"].get<double>(), 1.0);
  // Calibrating again needs --overwrite.
  r = run_ditgen("calibrate --model " + model + " --labels 3,7 --frames 4 --steps 2 --block 16 --out " + calib);
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("already exists"), std::string::npos) << r.output;
}

TEST_F(Cli, StaSearchWritesAFileThatWindowRuns) {
  // 4 frames in one-token tiles (at least 4 x 4 x 4 of them); every window of 4 tiles.
  const std::string calib = dir / "sta.json", json = dir / "sta_run.json";
  const std::string base = "calibrate --method sta --model " + model + " --labels 3,7 --frames 4 --steps 2 --tile 1x1x1 --block 4 ";
  auto r = run_ditgen(base + "--volume 4 --out " + calib);
  ASSERT_EQ(r.status, 0) << r.output;
  std::ifstream cf(calib);
  const auto c = nlohmann::json::parse(cf);
  EXPECT_EQ(c["windows"].size(), 6u);  // 1x1x4 1x2x2 1x4x1 2x1x2 2x2x1 4x1x1
  EXPECT_EQ(c["steps"], 2);
  r = run_ditgen("generate --model " + model + " --labels 3,7 --frames 4 --steps 2 --attn window:calib=" + calib +
                 ",dense_steps=0,block=4 --out " + (dir / "sta.mkv") + " --json " + json);
  ASSERT_EQ(r.status, 0) << r.output;
  std::ifstream f(json);
  const auto j = nlohmann::json::parse(f);
  EXPECT_NE(j["attn"].get<std::string>().find("tile=1x1x1"), std::string::npos) << j["attn"];
  EXPECT_LT(j["density"].get<double>(), 0.5);  // 4 tiles and the first frame
  // Exactly one of --windows and --volume; the other method's flags are refused.
  for (const auto& [args, says] : std::vector<std::pair<std::string, std::string>>{
           {"", "exactly one of --windows"},
           {"--volume 4 --windows 1x1x4 ", "exactly one of --windows"},
           {"--volume 5 ", "no window of 5 tiles"},
           {"--volume 0 ", "--volume 0 must be at least 1"},
           {"--windows 1xx4 ", "--tile/--windows"},
           {"--volume 4 --mass 0.9 ", "--mass does not apply to --method sta"}}) {
    r = run_ditgen(base + args + "--overwrite --out " + (dir / "sta_bad.json"));
    EXPECT_EQ(r.status, 2) << args << r.output;
    EXPECT_NE(r.output.find(says), std::string::npos) << args << r.output;
  }
  r = run_ditgen("calibrate --model " + model + " --labels 3,7 --frames 4 --steps 2 --volume 4 --out " + (dir / "p.json"));
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("--volume does not apply to --method paro"), std::string::npos) << r.output;
}

TEST_F(Cli, CompareRunsEachAttentionUnderEachCacheAndScoresDigitsFromAnyDirectory) {
  // The test runs in the build tree, not the repository root: the shipped classifier is found
  // next to the binary, as score-digits finds it.
  const std::string json = dir / "cmp.json";
  auto r = run_ditgen("compare --model " + model + " --labels 3,7 --frames 4 --steps 5 --attn radial3d:block=16 "
                      "--cache off --cache easy:thresh=10,warmup=1 --json " + json);
  ASSERT_EQ(r.status, 0) << r.output;
  std::ifstream f(json);
  const auto j = nlohmann::json::parse(f);
  ASSERT_TRUE(j["classifier"].is_string()) << j;
  EXPECT_TRUE(fs::equivalent(j["classifier"].get<std::string>(), fs::path(DITGEN_SOURCE_DIR) / app::kShippedClassifier));
  EXPECT_TRUE(j["baseline"].contains("digit_score"));
  ASSERT_EQ(j["runs"].size(), 2u);
  EXPECT_EQ(j["runs"][0]["cache"], "off");
  EXPECT_EQ(j["runs"][1]["cache"].get<std::string>().rfind("easy:", 0), 0u) << j["runs"][1]["cache"];
  EXPECT_TRUE(j["runs"][0]["skipped_steps"].empty());
  EXPECT_EQ(j["runs"][1]["skipped_steps"], nlohmann::json::array({2, 3}))
      << "threshold 10 skips every step the rule may (step 0 warm-up, 1 its first rate, 4 the last)";
  for (const auto& run : j["runs"]) EXPECT_GT(run["speedup_e2e"].get<double>(), 0.0) << run;
  // A classifier that is not there is refused, not skipped.
  const std::string missing = dir / "no-such-classifier.yml.gz";
  r = run_ditgen("compare --model " + model + " --labels 3,7 --frames 4 --steps 3 --attn dense --classifier " + missing);
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("classifier '" + missing + "' not found"), std::string::npos) << r.output;
  // The built-in model (no file to read the config from) runs too.
  r = run_ditgen("compare --model builtin:tiny --frames 2 --steps 2 --attn dense");
  EXPECT_EQ(r.status, 0) << r.output;
  // A classifier for a model whose videos it cannot score (not ten classes) is refused too.
  DiTConfig c4 = test::small_config();
  c4.num_classes = 4;
  const std::string four = dir / "four.h5";
  DiTWeights w4 = DiTWeights::random(c4, 5);
  io::save_weights(four, c4, w4, io::DiskType::Float16, false);
  const std::string shipped = fs::path(DITGEN_SOURCE_DIR) / app::kShippedClassifier;
  r = run_ditgen("compare --model " + four + " --labels 1,2 --frames 4 --steps 3 --attn dense --classifier " + shipped);
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("is not a ten-class label model"), std::string::npos) << r.output;
}

TEST_F(Cli, RiflexIsRecordedAndAnAbsentPairIsRefused) {
  const std::string json = dir / "r.json";
  auto r = run_ditgen("generate --model " + model + " --frames 4 --steps 2 --riflex 2 --out " + (dir / "r.mp4") +
                      " --json " + json);
  ASSERT_EQ(r.status, 0) << r.output;
  std::ifstream f(json);
  EXPECT_EQ(nlohmann::json::parse(f)["riflex"], 2);
  r = run_ditgen("generate --model " + model + " --frames 4 --steps 2 --riflex off --out " + (dir / "r.mp4") +
                 " --overwrite --json " + json);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(nlohmann::json::parse(std::ifstream(json))["riflex"].is_null());
  // The test model has 4 temporal rotary pairs (Dh 16): 0 and 5 are not pairs, and 0 does not mean "off".
  for (const char* k : {"0", "5"}) {
    r = run_ditgen("generate --model " + model + " --frames 4 --steps 2 --riflex " + k + " --out " + (dir / "bad.mp4"));
    EXPECT_EQ(r.status, 2) << k << r.output;
    EXPECT_NE(r.output.find(std::string("--riflex ") + k + " is out of range: expected a temporal rotary pair from 1 to 4"),
              std::string::npos) << r.output;
  }
  r = run_ditgen("generate --model " + model + " --frames 4 --steps 2 --riflex none --out " + (dir / "bad.mp4"));
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("--riflex 'none': expected a temporal rotary pair (an integer) or off"), std::string::npos)
      << r.output;
  EXPECT_FALSE(fs::exists(dir / "bad.mp4"));
}

TEST_F(Cli, InspectPrintsConfigAndTensors) {
  auto r = run_ditgen("inspect --model " + model);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("num_layers"), std::string::npos);
  EXPECT_NE(r.output.find("blocks.1.ffn.2.weight"), std::string::npos);
  EXPECT_NE(r.output.find("float16"), std::string::npos);
}

struct BadCase {
  const char* what;
  std::string args;
  int status;
  const char* message;
};

TEST_F(Cli, BadInputGivesAClearErrorAndNoOutput) {
  const std::string out = dir / "o.mp4";
  const std::string base = "generate --model " + model + " --steps 2 --frames 2 --out " + out;
  const BadCase cases[] = {
      {"missing model", "generate --model " + (dir / "nope.h5") + " --out " + out, 1, "no such file"},
      {"not HDF5", "generate --model " + (dir / "junk.h5") + " --out " + out, 1, "not an HDF5 file"},
      {"frames vs patch", "generate --model " + model + " --height 18 --out " + out, 2, "height = 18 is not divisible"},
      {"unknown attn", base + " --attn sparkle", 2, "unknown attention method 'sparkle'"},
      {"unknown attn key", base + " --attn dense:blok=64", 2, "no key 'blok'"},
      {"bad labels", base + " --labels 3,x", 2, "'x' is not an integer"},
      {"label range", base + " --labels 3,12", 2, "label 12 is out of range"},
      {"bad number", base + " --steps abc", 2, "steps"},
      {"missing dir", "generate --model " + model + " --out " + (dir / "no/such/dir/o.mp4"), 2, "does not exist"},
      {"extension", "generate --model " + model + " --out " + (dir / "o.gif"), 2, "unknown extension '.gif'"},
      {"unknown solver", base + " --solver rk4", 2, "rk4"},
  };
  std::ofstream(dir / "junk.h5") << "junk";
  for (const auto& c : cases) {
    auto r = run_ditgen(c.args);
    EXPECT_EQ(r.status, c.status) << c.what << ": " << r.output;
    EXPECT_NE(r.output.find(c.message), std::string::npos) << c.what << ": " << r.output;
    EXPECT_FALSE(fs::exists(out)) << c.what;
  }
  // Only the model and the junk file are left: no temporaries.
  EXPECT_EQ(files_in_dir(), 2u);
}

TEST_F(Cli, ExistingOutputNeedsOverwrite) {
  const std::string out = dir / "o.png";
  std::ofstream(out) << "keep me";
  auto r = run_ditgen("generate --model " + model + " --frames 1 --steps 1 --out " + out);
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("already exists"), std::string::npos) << r.output;
  std::ifstream f(out);
  std::string s((std::istreambuf_iterator<char>(f)), {});
  EXPECT_EQ(s, "keep me");
  EXPECT_EQ(run_ditgen("generate --model " + model + " --frames 1 --steps 1 --overwrite --out " + out).status, 0);
  EXPECT_GT(fs::file_size(out), 7u);
}

TEST_F(Cli, UnwritableOutputDirectory) {
  // /proc accepts no new files, even from root (who ignores permission bits).
  auto r = run_ditgen("generate --model " + model + " --frames 1 --steps 1 --out /proc/ditgen-test.png");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("not writable"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace ditgen
