// HDF5 weight files: round trip in all three dtypes and every load error naming its cause.
#include <gtest/gtest.h>
#include <hdf5.h>

#include <filesystem>
#include <fstream>

#include "io/weights_h5.h"
#include "tests/model_util.h"
#include "tests/test_util.h"

namespace ditgen {
namespace {

DiTConfig tiny() {
  DiTConfig c = test::small_config();
  c.dim = 24;
  c.ffn_dim = 32;
  c.freq_dim = 8;
  c.ctx_dim = 12;
  return c;
}

std::string load_error(const std::string& path) {
  try {
    io::load_weights(path);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

TEST(WeightsIO, RoundTripAllDtypes) {
  test::TempDir dir;
  const DiTConfig c = tiny();
  DiTWeights w = DiTWeights::random(c, 42);
  // Representable values: float16 has a 10-bit mantissa (rel. error 2^-11), bfloat16 7 bits (2^-8).
  const std::pair<io::DiskType, double> cases[] = {
      {io::DiskType::Float32, 0.0}, {io::DiskType::Float16, 1.0 / 2048}, {io::DiskType::BFloat16, 1.0 / 256}};
  for (auto [type, rel] : cases) {
    const std::string path = dir / ("w_" + io::disk_type_name(type) + ".h5");
    io::save_weights(path, c, w, type, false);
    io::LoadedModel m = io::load_weights(path);
    EXPECT_EQ(m.config.fields(), c.fields());
    auto a = w.tensor_table(c);
    auto b = m.weights.tensor_table(m.config);
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) {
      ASSERT_EQ(a[i].tensor->shape(), b[i].tensor->shape()) << a[i].name;
      for (int64_t j = 0; j < a[i].tensor->size(); ++j) {
        const float x = (*a[i].tensor)[j], y = (*b[i].tensor)[j];
        ASSERT_LE(std::fabs(x - y), rel * std::fabs(x) + 1e-7) << a[i].name << "[" << j << "] " << io::disk_type_name(type);
      }
      EXPECT_EQ(m.tensors[i].dtype, io::disk_type_name(type)) << a[i].name;
    }
  }
}

TEST(WeightsIO, ErrorsNameTheProblem) {
  test::TempDir dir;
  const DiTConfig c = tiny();
  DiTWeights w = DiTWeights::random(c, 1);
  EXPECT_NE(load_error(dir / "missing.h5").find("no such file"), std::string::npos);

  const std::string text = dir / "text.h5";
  std::ofstream(text) << "not an hdf5 file\n";
  EXPECT_NE(load_error(text).find("not an HDF5 file"), std::string::npos);

  const std::string good = dir / "good.h5";
  io::save_weights(good, c, w, io::DiskType::Float32, false);
  const std::string truncated = dir / "truncated.h5";
  std::filesystem::copy_file(good, truncated);
  std::filesystem::resize_file(truncated, std::filesystem::file_size(good) / 2);
  EXPECT_FALSE(load_error(truncated).empty());

  auto edit = [&](const std::string& name, auto&& fn) {
    const std::string p = dir / name;
    std::filesystem::copy_file(good, p);
    hid_t f = H5Fopen(p.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    fn(f);
    H5Fclose(f);
    return p;
  };
  const std::string no_tensor = edit("no_tensor.h5", [](hid_t f) { H5Ldelete(f, "blocks.1.ffn.0.bias", H5P_DEFAULT); });
  EXPECT_NE(load_error(no_tensor).find("'blocks.1.ffn.0.bias' is missing"), std::string::npos) << load_error(no_tensor);

  const std::string version = edit("version.h5", [](hid_t f) {
    const int64_t v = 99;
    hid_t a = H5Aopen(f, "format_version", H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_INT64, &v);
    H5Aclose(a);
  });
  EXPECT_NE(load_error(version).find("format_version is 99"), std::string::npos) << load_error(version);

  const std::string bad_cfg = edit("cfg.h5", [](hid_t f) {
    const int64_t v = -3;
    hid_t a = H5Aopen(f, "num_layers", H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_INT64, &v);
    H5Aclose(a);
  });
  EXPECT_NE(load_error(bad_cfg).find("num_layers = -3"), std::string::npos) << load_error(bad_cfg);

  const std::string shape = edit("shape.h5", [](hid_t f) {
    H5Ldelete(f, "head.head.bias", H5P_DEFAULT);
    hsize_t d = 5;
    hid_t s = H5Screate_simple(1, &d, nullptr);
    hid_t ds = H5Dcreate2(f, "head.head.bias", H5T_IEEE_F32LE, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    float z[5] = {0, 0, 0, 0, 0};
    H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, z);
    H5Dclose(ds);
    H5Sclose(s);
  });
  EXPECT_NE(load_error(shape).find("'head.head.bias' has shape (5), expected (16)"), std::string::npos) << load_error(shape);

  DiTWeights nan_w = DiTWeights::random(c, 1);
  nan_w.blocks[0].sa_q.weight[7] = NAN;
  const std::string nan_path = dir / "nan.h5";
  io::save_weights(nan_path, c, nan_w, io::DiskType::Float32, false);
  EXPECT_NE(load_error(nan_path).find("'blocks.0.self_attn.q.weight' has a non-finite value"), std::string::npos)
      << load_error(nan_path);
  DiTWeights inf_w = DiTWeights::random(c, 1);
  inf_w.head.bias[0] = INFINITY;
  const std::string inf_path = dir / "inf.h5";
  io::save_weights(inf_path, c, inf_w, io::DiskType::Float32, false);
  EXPECT_NE(load_error(inf_path).find("'head.head.bias' has a non-finite value"), std::string::npos);
}

TEST(WeightsIO, SaveRefusesToOverwriteAndLeavesNoTemporary) {
  test::TempDir dir;
  const DiTConfig c = tiny();
  DiTWeights w = DiTWeights::random(c, 3);
  const std::string p = dir / "m.h5";
  io::save_weights(p, c, w, io::DiskType::Float16, false);
  EXPECT_THROW(io::save_weights(p, c, w, io::DiskType::Float16, false), std::runtime_error);
  const auto files = std::distance(std::filesystem::directory_iterator(dir.path), std::filesystem::directory_iterator{});
  EXPECT_EQ(files, 1) << "a temporary file was left behind";
}

TEST(WeightsIO, LoadsFromMemoryImage) {
  test::TempDir dir;
  const DiTConfig c = tiny();
  DiTWeights w = DiTWeights::random(c, 5);
  const std::string p = dir / "m.h5";
  io::save_weights(p, c, w, io::DiskType::Float32, false);
  std::ifstream f(p, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  io::LoadedModel m = io::load_weights_from_memory(bytes.data(), bytes.size());
  EXPECT_EQ(m.config.dim, c.dim);
  EXPECT_EQ(m.weights.blocks[1].ffn0.weight[3], w.blocks[1].ffn0.weight[3]);
  bytes.resize(bytes.size() / 3);
  EXPECT_THROW(io::load_weights_from_memory(bytes.data(), bytes.size()), std::runtime_error);
}

}  // namespace
}  // namespace ditgen
