// C++/PyTorch parity on the shipped model: golden tensors exported by tools/train/golden.py
// (see tests/data/README.md). The C++ forward must match per block and in the final velocity
// to a relative error of at most 1e-3 (float32), and a whole sampling run must match the
// PyTorch sampler's video to a PSNR of at least 35 dB.
#include <gtest/gtest.h>
#include <hdf5.h>

#include <cmath>

#include "pipeline/generate.h"
#include "attention/backend.h"
#include "eval/metrics.h"
#include "io/weights_h5.h"
#include "tests/model_util.h"
#include "tests/test_util.h"

namespace ditgen {
namespace {

const std::string kModel = std::string(DITGEN_SOURCE_DIR) + "/models/digits-dit.h5";
const std::string kForward = std::string(DITGEN_SOURCE_DIR) + "/tests/data/golden_forward.h5";
const std::string kSample = std::string(DITGEN_SOURCE_DIR) + "/tests/data/golden_sample.h5";

// Reads a dataset as float64 values and its shape; fails the test if it is absent.
std::vector<double> read(hid_t file, const std::string& name, std::vector<int64_t>* shape = nullptr) {
  hid_t ds = H5Dopen2(file, name.c_str(), H5P_DEFAULT);
  EXPECT_GE(ds, 0) << "golden file lacks " << name;
  if (ds < 0) return {};
  hid_t space = H5Dget_space(ds);
  const int rank = H5Sget_simple_extent_ndims(space);
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  H5Sget_simple_extent_dims(space, dims.data(), nullptr);
  size_t n = 1;
  for (hsize_t d : dims) n *= size_t(d);
  std::vector<double> v(n);
  H5Dread(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data());
  H5Sclose(space);
  H5Dclose(ds);
  if (shape) shape->assign(dims.begin(), dims.end());
  return v;
}

double rel_error(const float* a, const std::vector<double>& ref, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; ++i) {
    num += (a[i] - ref[i]) * (a[i] - ref[i]);
    den += ref[i] * ref[i];
  }
  return std::sqrt(num / den);
}

class Parity : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    io::LoadedModel m = io::load_weights(kModel);
    model_ = new pipeline::Model(pipeline::assemble_model(m.config, std::move(m.weights)));
  }
  static void TearDownTestSuite() { delete model_; }
  static pipeline::Model* model_;
};
pipeline::Model* Parity::model_ = nullptr;

void check_group(pipeline::Model& m, hid_t file, const std::string& group, bool blocks) {
  DiTModel& model = *m.dit;
  std::vector<int64_t> xs;
  const std::vector<double> xd = read(file, group + "/x", &xs);
  ASSERT_EQ(xs.size(), 5u);
  const int batch = int(xs[0]);
  const LatentShape shape{int(xs[1]), int(xs[2]), int(xs[3])};
  std::vector<float> x(xd.begin(), xd.end()), out(x.size(), NAN);
  const std::vector<double> t = read(file, group + "/t");
  const std::vector<double> lab = read(file, group + "/labels");
  std::vector<std::vector<int>> labels(static_cast<size_t>(batch));
  for (int b = 0; b < batch; ++b)
    for (int j = 0; j < model.config().ctx_len; ++j) labels[size_t(b)].push_back(int(lab[size_t(b * model.config().ctx_len + j)]));
  const Tensor ctx = test::label_rows(m, labels);
  const std::vector<double> raw = read(file, group + "/raw_ctx");
  EXPECT_LE(rel_error(ctx.data(), raw, raw.size()), 1e-6) << group << " raw context";
  std::vector<Tensor> captured;
  model.set_capture(&captured);
  attn::DenseBackend dense;
  model.forward(x.data(), shape, batch, t.data(), ctx, dense, {}, out.data());
  model.set_capture(nullptr);
  if (blocks) {
    std::vector<int64_t> bs;
    const std::vector<double> gb = read(file, group + "/blocks", &bs);
    ASSERT_EQ(int64_t(captured.size()), bs[0]);
    const size_t per = size_t(captured[0].size());
    for (size_t l = 0; l < captured.size(); ++l) {
      const std::vector<double> ref(gb.begin() + long(l * per), gb.begin() + long((l + 1) * per));
      EXPECT_LE(rel_error(captured[l].data(), ref, per), 1e-3) << group << " block " << l;
    }
  }
  const std::vector<double> v = read(file, group + "/velocity");
  ASSERT_EQ(v.size(), out.size());
  EXPECT_LE(rel_error(out.data(), v, v.size()), 1e-3) << group << " velocity";
}

TEST_F(Parity, ForwardMatchesPyTorchPerBlockAndVelocity) {
  hid_t file = H5Fopen(kForward.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  ASSERT_GE(file, 0) << "cannot open " << kForward;
  check_group(*model_, file, "t2_32x32", true);
  check_group(*model_, file, "t1_64x64", false);
  H5Fclose(file);
}

double attr(hid_t obj, const char* name) {
  double v = 0;
  hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
  EXPECT_GE(a, 0) << "golden sample lacks attribute " << name;
  H5Aread(a, H5T_NATIVE_DOUBLE, &v);
  H5Aclose(a);
  return v;
}

// Runs group `name` of golden_sample.h5 through the C++ pipeline; returns the PSNR (float
// output, range 2) of the C++ video against PyTorch's.
double sampling_psnr(pipeline::Model& model, const std::string& name) {
  hid_t file = H5Fopen(kSample.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  EXPECT_GE(file, 0) << "cannot open " << kSample;
  hid_t group = H5Gopen2(file, name.c_str(), H5P_DEFAULT);
  EXPECT_GE(group, 0) << "golden sample lacks group " << name;
  std::vector<int64_t> shape;
  const std::vector<double> ref = read(file, name + "/output", &shape);
  const std::vector<double> labels = read(file, name + "/labels");
  pipeline::GenerateOptions opt;
  opt.shape = LatentShape{int(shape[0]), int(shape[1]), int(shape[2])};
  opt.steps = int(attr(file, "steps"));
  opt.cfg = attr(file, "cfg");
  opt.seed = uint64_t(attr(group, "seed"));
  opt.condition.labels = {int(labels[0]), int(labels[1])};
  opt.solver = name.substr(0, name.find('_'));
  H5Gclose(group);
  H5Fclose(file);
  attn::DenseBackend dense;
  const pipeline::GenerateResult r = pipeline::generate(model, dense, opt);
  const std::vector<float> reff(ref.begin(), ref.end());
  const double psnr = eval::psnr(reff.data(), r.video.data(), int64_t(ref.size()), 2.0);
  std::printf("%s: PSNR of the C++ run against PyTorch's: %.2f dB\n", name.c_str(), psnr);
  return psnr;
}

TEST_F(Parity, ImageSamplingRunsMatchPyTorchSampler) {
  EXPECT_GE(sampling_psnr(*model_, "unipc_t1"), 35.0);
  EXPECT_GE(sampling_psnr(*model_, "euler_t1"), 35.0);
}

TEST_F(Parity, VideoSamplingRunMatchesPyTorchSampler) { EXPECT_GE(sampling_psnr(*model_, "unipc_t16"), 35.0); }

}  // namespace
}  // namespace ditgen
