// The error matrix of docs/errors.md, one test per row, through the ditgen binary: each bad
// input gives a message naming the value and what was expected, exit status 2 for usage errors
// and 1 for runtime failures, no file at the output path and no temporary left behind.
// (tests/cli_test.cpp and tests/weights_io_test.cpp hold the first checks of some rows; these
// cover every row and its variants.)
#include <gtest/gtest.h>
#include <hdf5.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <cmath>
#include <initializer_list>
#include <set>

#include "io/safetensors.h"
#include "io/weights_h5.h"
#include "tests/model_util.h"
#include "tests/test_util.h"

namespace fs = std::filesystem;

namespace ditgen {
namespace {

using test::run_ditgen;

DiTConfig tiny_config() { return test::small_config(); }

using test::listing;

class Errors : public ::testing::Test {
 protected:
  void SetUp() override {
    model = dir / "tiny.h5";
    DiTWeights w = DiTWeights::random(tiny_config(), 21);
    io::save_weights(model, tiny_config(), w, io::DiskType::Float32, false);
    out = dir / "out.mkv";
  }

  // A copy of the model edited through the HDF5 API.
  template <class Fn>
  std::string edited(const std::string& name, Fn&& fn) {
    const std::string p = dir / name;
    fs::copy_file(model, p);
    const hid_t f = H5Fopen(p.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    EXPECT_GE(f, 0);
    fn(f);
    H5Fclose(f);
    return p;
  }
  static void set_int_attr(hid_t f, const char* name, int64_t v) {
    const hid_t a = H5Aopen(f, name, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_INT64, &v);
    H5Aclose(a);
  }
  static void replace_dataset(hid_t f, const char* name, std::vector<hsize_t> dims, hid_t type) {
    H5Ldelete(f, name, H5P_DEFAULT);
    hsize_t n = 1;
    for (hsize_t d : dims) n *= d;
    const hid_t s = H5Screate_simple(int(dims.size()), dims.data(), nullptr);
    const hid_t ds = H5Dcreate2(f, name, type, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    std::vector<double> z(size_t(n), 0.5);
    H5Dwrite(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, z.data());
    H5Dclose(ds);
    H5Sclose(s);
  }

  // Runs `args`, expects `status` and every part of `message` in the output, no file at
  // any of `outputs` and the directory as it was (no temporaries).
  void refused(const std::string& what, const std::string& args, int status, std::initializer_list<std::string> message,
               std::vector<std::string> outputs = {}) {
    if (outputs.empty()) outputs.push_back(out);
    const auto before = listing(dir.path);
    const auto r = run_ditgen(args);
    // DITGEN_ERRORS_PRINT=1 prints every case (how docs/errors.md was checked).
    if (std::getenv("DITGEN_ERRORS_PRINT"))
      std::printf("ROW %s\n$ ditgen %s\n%s[exit %d]\n", what.c_str(), args.c_str(), r.output.c_str(), r.status);
    EXPECT_EQ(r.status, status) << what << "\n$ ditgen " << args << "\n" << r.output;
    for (const auto& m : message) EXPECT_NE(r.output.find(m), std::string::npos) << what << ": expected '" << m << "' in\n" << r.output;
    EXPECT_NE(r.output.find("ditgen: error: "), std::string::npos) << what << ": " << r.output;
    for (const auto& o : outputs) EXPECT_FALSE(fs::exists(o)) << what << ": " << o << " exists";
    EXPECT_EQ(listing(dir.path), before) << what << ": files were added or removed";
    std::error_code ec;
    for (const auto& o : outputs) fs::remove(o, ec);  // keep one failure from hiding the next rows
  }
  std::string gen(const std::string& model_path, const std::string& extra = "") const {
    return "generate --model " + model_path + " --frames 2 --steps 1 --out " + out + (extra.empty() ? "" : " " + extra);
  }

  test::TempDir dir;
  std::string model, out;
};

TEST_F(Errors, MissingFile) {
  const std::string p = dir / "nope.h5";
  refused("generate", gen(p), 1, {"weight file '" + p + "': no such file"});
  refused("inspect", "inspect --model " + p, 1, {"'" + p + "': no such file"});
  // A folder is a Wan2.1 model folder.
  refused("directory", gen(dir.path.string()), 1, {"has no Wan2.1 DiT: expected diffusion_pytorch_model.safetensors"});
}

TEST_F(Errors, WanVaeInput) {
  // `ditgen vae` with the tiny official-structure VAE: latents it cannot decode and a VAE
  // file whose tensor does not fit the structure are refused before any frame is written.
  const std::string vae = std::string(DITGEN_SOURCE_DIR) + "/tests/data/wan/tiny_vae.safetensors";
  const std::string png = dir / "v.png";
  auto latents = [&](const std::string& name, std::vector<int64_t> shape, float bad) {
    std::vector<float> z(size_t(shape[0] * shape[1] * shape[2] * shape[3]), 0.25f);
    z[z.size() / 3] = bad;
    const std::string p = dir / name;
    io::write_safetensors(p, {{"latents", DType::F32, shape, z.data(), nullptr}});
    return p;
  };
  const std::string eight = latents("eight.safetensors", {8, 2, 4, 4}, 0.25f);
  const std::string nan = latents("nan.safetensors", {16, 2, 4, 4}, NAN);
  const std::string good = latents("good.safetensors", {16, 2, 4, 4}, 0.25f);
  auto decode = [&](const std::string& model, const std::string& lat) {
    return "vae --model " + model + " --decode " + lat + " --out " + png;
  };
  refused("wrong channel count", decode(vae, eight), 2, {"latents have 8 channels, the VAE expects 16"}, {png});
  refused("NaN in the latents", decode(vae, nan), 1, {"tensor 'latents' holds a non-finite value (nan)"}, {png});
  // One tensor of the VAE mis-shaped: a copy with conv2.weight (16, 16, 1, 1, 1) as (16, 8, 1, 1, 1).
  const io::SafetensorsFile f = io::SafetensorsFile::open(vae);
  std::vector<std::vector<float>> values;
  std::vector<io::SafetensorsWriteTensor> tensors;
  for (const auto& t : f.tensors()) values.push_back(f.to_float(t.name));
  for (size_t i = 0; i < f.tensors().size(); ++i) {
    const auto& t = f.tensors()[i];
    std::vector<int64_t> shape = t.shape;
    if (t.name == "conv2.weight") shape = {16, 8, 1, 1, 1};
    tensors.push_back({t.name, DType::F32, shape, values[i].data(), nullptr});
  }
  const std::string bent = dir / "bent.safetensors";
  io::write_safetensors(bent, tensors);
  refused("mis-shaped VAE tensor", decode(bent, good), 1, {"tensor 'conv2.weight' has shape (16, 8, 1, 1, 1)"}, {png});
  refused("no such latents file", decode(vae, dir / "nope.safetensors"), 1, {"nope.safetensors"}, {png});
}

TEST_F(Errors, NotHdf5) {
  const std::string text = dir / "text.h5", empty = dir / "empty.h5", png = dir / "image.h5";
  std::ofstream(text) << "format=ditgen\n";
  std::ofstream(empty).close();
  std::ofstream(png, std::ios::binary) << std::string("\x89PNG\r\n\x1a\n", 8) << std::string(600, '\0');
  for (const auto& p : {text, empty, png}) refused(p, gen(p), 1, {"weight file '" + p + "'", "not an HDF5 file"});
}

TEST_F(Errors, TruncatedFile) {
  const auto size = fs::file_size(model);
  for (double share : {0.999, 0.5, 0.05}) {
    const std::string p = dir / ("cut" + std::to_string(int(share * 1000)) + ".h5");
    fs::copy_file(model, p);
    fs::resize_file(p, uintmax_t(double(size) * share));
    refused(p, gen(p), 1, {"weight file '" + p + "'", "truncated"});
  }
}

TEST_F(Errors, WrongFormatVersion) {
  const std::string v2 = edited("v2.h5", [](hid_t f) { set_int_attr(f, "format_version", 2); });
  refused("version 2", gen(v2), 1, {"format_version is 2, this build reads version 1"});
  const std::string other = edited("other.h5", [](hid_t f) { H5Adelete(f, "format"); });
  refused("no format attribute", gen(other), 1, {"attribute 'format' is '', expected 'ditgen'"});
  const std::string nover = edited("nover.h5", [](hid_t f) { H5Adelete(f, "format_version"); });
  refused("no version", gen(nover), 1, {"attribute 'format_version' is missing"});
}

TEST_F(Errors, MissingTensor) {
  const std::string p = edited("missing.h5", [](hid_t f) { H5Ldelete(f, "blocks.1.cross_attn.k.weight", H5P_DEFAULT); });
  refused("generate", gen(p), 1, {"tensor 'blocks.1.cross_attn.k.weight' is missing (expected shape (32, 32))"});
  refused("inspect", "inspect --model " + p, 1, {"tensor 'blocks.1.cross_attn.k.weight' is missing"});
}

TEST_F(Errors, MisShapedTensor) {
  const std::string shape = edited("shape.h5", [](hid_t f) { replace_dataset(f, "text_embedding.0.weight", {32, 15}, H5T_IEEE_F32LE); });
  refused("shape", gen(shape), 1, {"tensor 'text_embedding.0.weight' has shape (32, 15), expected (32, 16)"});
  const std::string rank = edited("rank.h5", [](hid_t f) { replace_dataset(f, "head.head.bias", {4, 4}, H5T_IEEE_F32LE); });
  refused("rank", gen(rank), 1, {"tensor 'head.head.bias' has shape (4, 4), expected (16)"});
  const std::string type = edited("type.h5", [](hid_t f) { replace_dataset(f, "head.head.bias", {16}, H5T_STD_I32LE); });
  refused("element type", gen(type), 1, {"tensor 'head.head.bias' has element type non-float, expected float32"});
}

TEST_F(Errors, NanOrInfWeight) {
  DiTWeights w = DiTWeights::random(tiny_config(), 21);
  w.blocks[1].ffn2.weight[5] = NAN;
  const std::string nan_path = dir / "nan.h5";
  io::save_weights(nan_path, tiny_config(), w, io::DiskType::Float32, false);
  refused("NaN", gen(nan_path), 1, {"tensor 'blocks.1.ffn.2.weight' has a non-finite value (nan) at flat index 5"});
  // 1e6 is finite in float32 but overflows float16 on disk.
  DiTWeights w2 = DiTWeights::random(tiny_config(), 21);
  w2.time0.bias[3] = 1e6f;
  const std::string inf_path = dir / "inf.h5";
  io::save_weights(inf_path, tiny_config(), w2, io::DiskType::Float16, false);
  refused("Inf", gen(inf_path), 1, {"tensor 'time_embedding.0.bias' has a non-finite value (inf) at flat index 3"});
}

TEST_F(Errors, ConfigValuesOutOfRange) {
  const std::string heads = edited("heads.h5", [](hid_t f) { set_int_attr(f, "num_heads", 0); });
  refused("num_heads", gen(heads), 1, {"config num_heads = 0 is out of range: expected 1 to 256"});
  const std::string huge = edited("huge.h5", [](hid_t f) { set_int_attr(f, "dim", 100000); });
  refused("dim", gen(huge), 1, {"config dim = 100000 is out of range: expected 1 to 16384"});
  const std::string div = edited("div.h5", [](hid_t f) { set_int_attr(f, "num_heads", 3); });
  refused("divisible", gen(div), 1, {"config dim = 32 is not divisible by num_heads = 3"});
  const std::string frac = edited("frac.h5", [](hid_t f) {
    H5Adelete(f, "patch_h");
    const double v = 2.5;
    const hid_t s = H5Screate(H5S_SCALAR);
    const hid_t a = H5Acreate2(f, "patch_h", H5T_IEEE_F64LE, s, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_DOUBLE, &v);
    H5Aclose(a);
    H5Sclose(s);
  });
  refused("integer", gen(frac), 1, {"config patch_h = 2.5 must be an integer"});
  const std::string text = edited("text.h5", [](hid_t f) {
    H5Adelete(f, "eps");
    const hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, 4);
    const hid_t s = H5Screate(H5S_SCALAR);
    const hid_t a = H5Acreate2(f, "eps", t, s, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, t, "tiny");
    H5Aclose(a);
    H5Sclose(s);
    H5Tclose(t);
  });
  refused("not a number", gen(text), 1, {"config attribute 'eps' is missing or not a number"});
}

TEST_F(Errors, FramesOrSizeNotDivisibleByThePatch) {
  DiTConfig c = tiny_config();
  c.patch_t = 2;
  DiTWeights w = DiTWeights::random(c, 3);
  const std::string pt2 = dir / "pt2.h5";
  io::save_weights(pt2, c, w, io::DiskType::Float32, false);
  const std::string base = "generate --model " + pt2 + " --steps 1 --out " + out;
  refused("frames", base + " --frames 3", 2, {"frames = 3 is not divisible by the model's patch_t = 2"});
  refused("height", base + " --frames 2 --height 18", 2, {"height = 18 is not divisible by the model's patch_h = 4"});
  refused("width", base + " --frames 2 --width 30", 2, {"width = 30 is not divisible by the model's patch_w = 4"});
  refused("zero frames", base + " --frames 0", 2, {"--frames 0 is out of range: expected at least 1"});
  refused("negative size", base + " --frames 2 --width -8", 2, {"--width -8", "expected"});
}

TEST_F(Errors, TooManyTokensForTheMemory) {
  // An explicit limit: the estimate and the limit are both named.
  refused("--max-memory", gen(model, "--max-memory 1"), 1,
          {"this run needs about ", " MiB (32 tokens, batch 2) but only 1 MiB are available"});
  // No limit given: the memory available now. 2^30 frames of 4096 x 4096 overflow any int64
  // product too; the guard must refuse before allocating, not wrap around.
  refused("memory available",
          "generate --model " + model + " --frames 1073741824 --height 4096 --width 4096 --steps 1 --out " + out, 1,
          {"this run needs about ", "MiB are available; use fewer frames or a smaller size"});
  refused("huge sizes", "generate --model " + model + " --frames 2147483647 --height 2147483644 --width 2147483644 --out " + out,
          1, {"this run needs about "});
}

TEST_F(Errors, UnknownAttentionMethodOrKey) {
  refused("method", gen(model, "--attn sparkle"), 2, {"unknown attention method 'sparkle' (known: dense"});
  refused("key", gen(model, "--attn dense:blocksize=64"), 2, {"attention method 'dense' has no key 'blocksize' (keys: block, isa)"});
  refused("value", gen(model, "--attn dense:block=0"), 2, {"block=0 is not an integer in 1..1024"});
  refused("syntax", gen(model, "--attn dense:block"), 2, {"'block' is not key=value"});
  refused("twice", gen(model, "--attn dense:block=8,block=16"), 2, {"key 'block' given twice"});
  refused("empty", gen(model, "--attn ''"), 2, {"has no method name"});
  refused("isa", gen(model, "--isa sse9"), 2, {"unknown kernel ISA 'sse9': expected auto"});
  refused("isa key", gen(model, "--attn radial3d:isa=sse9"), 2,
          {"attention method 'radial3d': isa=sse9 is not one of: auto, portable, avx2, avx512, avx512bf16"});
  refused("tile", gen(model, "--attn window:tile=5000"), 2, {"'5000' is not a size TxHxW of integers in 1..1024"});
  // paro:calib=FILE reads outside input: a missing file and one with an impossible plan.
  refused("calibration missing", gen(model, "--attn paro:calib=" + (dir / "none.json")), 2,
          {"attention method 'paro': cannot read calibration file '" + (dir / "none.json") + "'"});
  const std::string calib = dir / "calib.json";
  std::ofstream(calib) << R"({"format": "ditgen-paro-calibration", "version": 1, "grid": [2, 4, 4], "block": 16,
    "heads": 2, "layers": 2, "mass": 0.9, "plans": [{"layer": 0, "head": -5, "order": "thw", "density": 1, "rows": ["3", "3"]}]})";
  refused("calibration plan", gen(model, "--attn paro:calib=" + calib), 2,
          {"attention method 'paro': calibration file '" + calib + "': plan head = -5 is not an integer in 0..1"});
}

TEST_F(Errors, InvalidNumbersOnTheCommandLine) {
  struct Case {
    const char* flag;
    std::string message;
  };
  const Case cases[] = {
      {"--steps abc", "--steps 'abc' is not a valid value: expected a whole number"},
      {"--steps -1", "--steps -1 is out of range: expected 1 to 10000"},
      // 0 is refused like any other value out of range, never read as "the model's default".
      {"--steps 0", "--steps 0 is out of range: expected 1 to 10000"},
      {"--height 0", "--height 0 is out of range: expected a positive multiple of 4"},
      {"--width 0", "--width 0 is out of range"},
      {"--cfg -1", "--cfg -1 is out of range: expected 0 to 100"},
      {"--max-memory 0", "--max-memory 0 is out of range: expected a positive number of MiB"},
      {"--steps 20000", "--steps 20000 is out of range"},
      {"--frames 99999999999", "99999999999"},
      {"--frames 2.5", "--frames '2.5' is not a valid value: expected a whole number"},
      {"--cfg four", "--cfg 'four' is not a valid value: expected a number"},
      {"--cfg nan", "--cfg nan is out of range: expected 0 to 100"},
      {"--cfg 1000", "--cfg 1000"},
      {"--threads 5000", "--threads 5000 is out of range: expected 0 (all) to 1024"},
      {"--threads -2", "--threads -2 is out of range"},
      {"--fps 0", "--fps 0"},
      {"--fps nan", "--fps nan"},
      {"--seed -1", "--seed: -1 is out of range: expected 0 to 2^64-1"},
      {"--seed x", "x"},
      {"--max-memory -5", "--max-memory -5 is out of range"},
      {"--max-memory nan", "--max-memory nan is out of range"},
      {"--max-memory inf", "--max-memory inf is out of range"},
      {"--labels 3,", "--labels '3,'"},
      {"--labels 3,99", "label 99 is out of range 0 to 9"},
      {"--labels 3,7,1", "gives 3 labels, the model expects 2"},
      {"--labels 4294967299,1", "'4294967299' is not an integer"},
  };
  for (const auto& c : cases) {
    const std::string f = c.flag;
    std::string args = "generate --model " + model + " --out " + out + " " + f;
    if (f.rfind("--frames", 0) != 0) args += " --frames 2";
    if (f.rfind("--steps", 0) != 0) args += " --steps 1";
    refused(f, args, 2, {c.message});
  }
}

TEST_F(Errors, OutputDirectoryMissingOrNotWritable) {
  const std::string missing = dir / "no/such/out.mkv";
  refused("missing", "generate --model " + model + " --frames 2 --steps 1 --out " + missing, 2,
          {"output directory '" + (dir / "no/such") + "' does not exist"}, {missing});
  refused("missing json dir", gen(model, "--json " + (dir / "nodir/run.json")), 2, {"does not exist"});
  refused("missing frames dir parent", gen(model, "--frames-dir " + (dir / "nodir/frames")), 2,
          {"frames directory parent '" + (dir / "nodir") + "' does not exist"});
  refused("frames dir is a file", gen(model, "--frames-dir " + model), 2,
          {"frames directory '" + model + "' is a file, expected a directory"});
  refused("file as directory", "generate --model " + model + " --frames 2 --steps 1 --out " + model + "/out.mkv", 2,
          {"output directory '" + model + "' does not exist"}, {model + "/out.mkv"});
  // The output path is a directory.
  fs::create_directory(dir / "adir.mkv");
  refused("directory", "generate --model " + model + " --frames 2 --steps 1 --overwrite --out " + (dir / "adir.mkv"), 2,
          {"output path '" + (dir / "adir.mkv") + "' is a directory"}, {});
  // Not writable: permission bits for a normal user; root ignores them, so a read-only mount.
  const std::string ro = dir / "ro";
  fs::create_directory(ro);
  bool mounted = false;
  if (::geteuid() == 0) {
    mounted = ::mount("tmpfs", ro.c_str(), "tmpfs", MS_RDONLY, "size=64k") == 0;
    if (!mounted) GTEST_SKIP() << "root without mount(2) here: see tests/cli_test.cpp (UnwritableOutputDirectory)";
  } else {
    ::chmod(ro.c_str(), 0555);
  }
  refused("read-only", "generate --model " + model + " --frames 2 --steps 1 --out " + ro + "/out.mkv", 2,
          {"output directory '" + ro + "' is not writable"}, {ro + "/out.mkv"});
  if (mounted) ::umount(ro.c_str());
  ::chmod(ro.c_str(), 0755);
}

TEST_F(Errors, UnknownOutputFileExtension) {
  refused("gif", "generate --model " + model + " --frames 2 --steps 1 --out " + (dir / "o.gif"), 2,
          {"output '" + (dir / "o.gif") + "' has unknown extension '.gif': expected .mp4"}, {dir / "o.gif"});
  refused("none", "generate --model " + model + " --frames 2 --steps 1 --out " + (dir / "video"), 2,
          {"has unknown extension ''"}, {dir / "video"});
  refused("sheet", gen(model, "--sheet " + (dir / "sheet.mkv")), 2, {"--sheet '" + (dir / "sheet.mkv") + "' must end in .png"},
          {out, dir / "sheet.mkv"});
}

TEST_F(Errors, RawContextModelIsRefusedByGenerate) {
  // The model API takes raw context; generate has a label lookup only, and says so.
  DiTConfig c = tiny_config();
  c.num_classes = 0;
  const std::string raw = dir / "raw.h5";
  DiTWeights w = DiTWeights::random(c, 5);
  io::save_weights(raw, c, w, io::DiskType::Float32, false);
  refused("raw context", gen(raw), 2, {"this model has num_classes = 0", "expected num_classes > 0"});
}

TEST_F(Errors, OutputFileAlreadyPresent) {
  const std::string json = dir / "run.json", frames = dir / "frames";
  std::ofstream(out) << "keep";
  refused("video present", gen(model, "--json " + json), 2,
          {"output file '" + out + "' already exists; pass --overwrite to replace it"}, {json});
  std::ifstream f(out);
  EXPECT_EQ(std::string((std::istreambuf_iterator<char>(f)), {}), "keep");
  fs::remove(out);
  // Any of the outputs: checked before the run, so nothing is written.
  std::ofstream(json) << "{}";
  refused("json present", gen(model, "--json " + json), 2, {"output file '" + json + "' already exists"});
  fs::remove(json);
  fs::create_directory(frames);
  std::ofstream(fs::path(frames) / "frame_0001.png") << "keep";
  refused("frame present", gen(model, "--json " + json + " --frames-dir " + frames), 2,
          {"frames directory '" + frames + "' already holds frame_0001.png; pass --overwrite"}, {out, json});
  const auto r = run_ditgen(gen(model, "--json " + json + " --frames-dir " + frames + " --overwrite"));
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(fs::exists(out));
  EXPECT_GT(fs::file_size(json), 2u);
  EXPECT_GT(fs::file_size(fs::path(frames) / "frame_0001.png"), 4u);  // replaced by a PNG
}

// Disk full while writing, two ways: a real ENOSPC on a small tmpfs (root with mount(2)), and a
// file-size limit (RLIMIT_FSIZE, writes fail with EFBIG), which works for any user.
class DiskFull : public Errors {
 protected:
  // `shell_prefix` runs before the binary in the same sh -c (e.g. "ulimit -f 16; ").
  static test::RunResult run_shell(const std::string& cmd) {
    test::RunResult r{-1, {}};
    FILE* p = popen((cmd + " 2>&1").c_str(), "r");
    if (!p) return r;
    char buf[4096];
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, got);
    const int st = pclose(p);
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return r;
  }
  void check(const std::string& target_dir, const std::string& shell_prefix, const std::string& ext) {
    const std::string o = target_dir + "/out" + ext;
    const auto before = listing(target_dir);
    // 6 frames of 64 x 64 noise-like video: tens of KiB in every format.
    const auto r = run_shell(shell_prefix + DITGEN_BINARY +
                             " generate --model builtin:tiny --frames 6 --height 64 --width 64 --steps 1 --out " + o);
    if (std::getenv("DITGEN_ERRORS_PRINT"))
      std::printf("ROW disk full %s\n$ %s... --out %s\n%s[exit %d]\n", ext.c_str(), shell_prefix.c_str(), o.c_str(),
                  r.output.c_str(), r.status);
    EXPECT_EQ(r.status, 1) << ext << ": " << r.output;
    EXPECT_NE(r.output.find("'" + o + "'"), std::string::npos) << ext << ": " << r.output;
    EXPECT_NE(r.output.find("disk full"), std::string::npos) << ext << ": " << r.output;
    EXPECT_FALSE(fs::exists(o)) << ext;
    EXPECT_EQ(listing(target_dir), before) << ext << ": a temporary was left behind";
  }
};

TEST_F(DiskFull, FileSizeLimit) {
  // The binary runs under sh with an 8-block limit (ulimit -f counts 512-byte blocks in dash and
  // 1024-byte ones in bash: 4 or 8 KiB, below every output here, the smallest being ~15 KiB).
  for (const char* ext : {".png", ".mkv", ".mp4"}) check(dir.path.string(), "ulimit -f 8; ", ext);
}

TEST_F(DiskFull, SmallTmpfs) {
  const std::string small = dir / "small";
  fs::create_directory(small);
  if (::mount("tmpfs", small.c_str(), "tmpfs", 0, "size=8k") != 0)
    GTEST_SKIP() << "mount(2) is not permitted here (not root, or in a container without CAP_SYS_ADMIN)";
  for (const char* ext : {".png", ".mkv", ".mp4"}) check(small, "", ext);
  ::umount(small.c_str());
}

}  // namespace
}  // namespace ditgen
