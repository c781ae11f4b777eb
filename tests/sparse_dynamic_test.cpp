// Per-head and dynamic methods: svg's profiling picks spatial or temporal heads, topp's
// selection, and paro's calibration round trip; outputs against the reference under the same
// per-head element masks.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <random>

#include "attention/kernel/kernel.h"
#include "attention/mask/mask.h"
#include "attention/methods/paro.h"
#include "attention/mask/reorder.h"
#include "attention/spec.h"

using namespace ditgen;
using namespace ditgen::attn;

namespace {

constexpr int kT = 4, kH = 8, kW = 8, kDh = 16;

// Head 0 attends within its frame, head 1 along time at its spatial position.
struct Inputs {
  TokenLayout layout{kT, kH, kW};
  std::vector<float> q, k, v;
  Inputs() {
    const int64_t n = layout.tokens();
    std::mt19937 g(3);
    std::normal_distribution<float> d;
    std::vector<float> frame_vec(size_t(kT) * kDh), pos_vec(size_t(kH * kW) * kDh);
    for (float& f : frame_vec) f = d(g);
    for (float& f : pos_vec) f = d(g);
    for (auto* a : {&q, &k, &v}) a->resize(size_t(2 * n * kDh));
    for (int64_t i = 0; i < n; ++i) {
      const Coord c = layout.coord(i);
      const int p = c.h * kW + c.w;
      for (int ch = 0; ch < kDh; ++ch) {
        const float noise = 0.1f * d(g);
        q[size_t(i * kDh + ch)] = k[size_t(i * kDh + ch)] = 2.5f * frame_vec[size_t(c.t * kDh + ch)] + noise;
        q[size_t((n + i) * kDh + ch)] = k[size_t((n + i) * kDh + ch)] = 2.5f * pos_vec[size_t(p * kDh + ch)] + noise;
      }
    }
    for (float& f : v) f = d(g);
  }
  AttentionInputs in() const { return AttentionInputs{q.data(), k.data(), v.data(), 1, 2, layout.tokens(), kDh, &layout}; }
};

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, double(std::fabs(a[i] - b[i])));
  return m;
}

}  // namespace

TEST(SparseSvg, ProfilingPicksSpatialAndTemporalHeads) {
  Inputs x;
  auto b = make_backend("svg:block=32,density=0.2,dense_steps=0,dense_layers=0");
  std::vector<float> out(x.q.size()), ref(x.q.size());
  const AttendReport r = b->attend(x.in(), out.data(), AttentionContext{0, 1, 0, 1});
  const auto j = nlohmann::json::parse(b->report_json());
  EXPECT_EQ(j["last_head_choice"], "ST");
  EXPECT_GT(j["profile_seconds"].get<double>(), 0.0);
  EXPECT_LT(r.density, 0.6);
  // Reference: the execution band in frame-major order for head 0, in the transposed order for head 1.
  const int64_t n = x.layout.tokens(), f = kH * kW;
  const int64_t w = int64_t(std::ceil(double(n) * (1 - std::sqrt(1 - 0.2)) / 32.0)) * 32;
  const TokenLayout tr = transpose_layout(kT, kH, kW);
  FunctionMask spatial([&](int64_t i, int64_t k) { return std::llabs(i - k) <= w || k < f; });
  FunctionMask temporal([&](int64_t i, int64_t k) {
    const int64_t a = tr.inverse()[size_t(i)], c = tr.inverse()[size_t(k)];
    return std::llabs(a - c) <= w || c < f;
  });
  const BlockMap es = element_map(spatial, n, 32), et = element_map(temporal, n, 32);
  const BlockMap e = stack_maps({&es, &et}, {0, 1});
  reference_attention(self_attention(x.q.data(), x.k.data(), x.v.data(), ref.data(), 2, n, kDh, &e));
  EXPECT_LT(max_abs_diff(out, ref), 2e-5);
}

TEST(SparseTopp, MassOneIsDenseAndSmallerMassIsSparser) {
  Inputs x;
  const int64_t n = x.layout.tokens();
  std::vector<float> out(x.q.size()), ref(x.q.size());
  auto all = make_backend("topp:p=1,block=32");
  EXPECT_DOUBLE_EQ(all->attend(x.in(), out.data(), AttentionContext{0, 1, 0, 1}).density, 1.0);
  reference_attention(self_attention(x.q.data(), x.k.data(), x.v.data(), ref.data(), 2, n, kDh, nullptr));
  EXPECT_LT(max_abs_diff(out, ref), 2e-5);
  auto some = make_backend("topp:p=0.5,block=32");
  const double d = some->attend(x.in(), out.data(), AttentionContext{0, 1, 0, 1}).density;
  EXPECT_LT(d, 0.6);
  EXPECT_GE(d, 2.0 / 8.0 - 1e-12);  // at least the diagonal and the sink
}

TEST(SparseParo, CalibrationPicksOrdersAndTheBackendRunsThem) {
  Inputs x;
  const int64_t n = x.layout.tokens();
  ParoCalibrator cal(32, 0.9, 1.0, 1);
  std::vector<float> out(x.q.size()), ref(x.q.size());
  cal.attend(x.in(), out.data(), AttentionContext{0, 1, 0, 1});
  reference_attention(self_attention(x.q.data(), x.k.data(), x.v.data(), ref.data(), 2, n, kDh, nullptr));
  EXPECT_LT(max_abs_diff(out, ref), 2e-5);  // calibration runs dense
  const ParoCalibration c = cal.result();
  ASSERT_EQ(c.plans.size(), 2u);
  EXPECT_EQ(c.plans[0].order[0], 't');  // frames as the slowest axis: a frame is 2 whole blocks
  EXPECT_EQ(c.plans[1].order[2], 't');  // time fastest: a position's frames share a block
  EXPECT_LT(c.plans[0].density, 0.5);
  EXPECT_LT(c.plans[1].density, 0.5);
  const std::string path = testing::TempDir() + "sparse_paro_calib.json";
  c.write(path);
  const ParoCalibration back = ParoCalibration::read(path);
  ASSERT_EQ(back.plans.size(), 2u);
  EXPECT_EQ(back.plans[1].keep, c.plans[1].keep);
  EXPECT_EQ(back.plans[1].order, c.plans[1].order);

  auto b = make_backend("paro:calib=" + path);
  EXPECT_NE(b->spec().find("block=32"), std::string::npos) << b->spec();
  EXPECT_LT(b->attend(x.in(), out.data(), AttentionContext{0, 1, 0, 1}).density, 0.5);
  std::vector<BlockMap> per;
  for (const auto& p : c.plans) {
    const TokenLayout ol = axis_order_layout(kT, kH, kW, p.order);
    FunctionMask m([&](int64_t i, int64_t k) {
      return p.keep[size_t(ol.inverse()[size_t(i)] / 32)][size_t(ol.inverse()[size_t(k)] / 32)] != 0;
    });
    per.push_back(element_map(m, n, 32));
  }
  const BlockMap e = stack_maps({&per[0], &per[1]}, {0, 1});
  reference_attention(self_attention(x.q.data(), x.k.data(), x.v.data(), ref.data(), 2, n, kDh, &e));
  EXPECT_LT(max_abs_diff(out, ref), 2e-5);
  // Another grid is refused with a message naming the file.
  TokenLayout other(2, 8, 8);
  AttentionInputs in2 = x.in();
  in2.layout = &other;
  in2.tokens = other.tokens();
  try {
    b->attend(in2, out.data(), AttentionContext{0, 1, 0, 1});
    ADD_FAILURE() << "expected a grid mismatch";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("sparse_paro_calib.json"), std::string::npos);
  }
}
