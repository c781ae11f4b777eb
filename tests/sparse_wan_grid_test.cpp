// Every --attn method on Wan2.1's token grid at 480 x 832 x 81 frames: 21 x 30 x 52 = 32,760
// tokens, whose sides are not multiples of any tile or block (ragged last tiles in every axis).
// For each method, late in the run (past any dense steps or layers): the map lets every query
// attend to itself, the density is in (0, 1], and sampled rows spread over the grid (the ragged
// corners included) equal exact attention restricted to the pairs the report allows (double
// precision; tolerance 2e-5 absolute on unit-variance values, float32 accumulation over up to
// 32,760 keys).
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "attention/methods/methods.h"
#include "attention/methods/paro.h"
#include "attention/spec.h"
#include "tests/test_util.h"

using namespace ditgen;
using namespace ditgen::attn;

namespace {

constexpr int kT = 21, kH = 30, kW = 52, kDh = 16;

struct Grid {
  TokenLayout engine{kT, kH, kW};
  std::vector<float> q, k, v;
  Grid() {
    std::mt19937_64 rng = test::fresh_rng();
    const size_t n = size_t(engine.tokens()) * kDh;
    q = test::random_vector(n, rng), k = test::random_vector(n, rng), v = test::random_vector(n, rng);
  }
};

// Checks `b` on the grid; inputs in the engine order the backend asks for.
void check_method(const std::string& spec, AttentionBackend& b, const Grid& g) {
  const TokenLayout layout = b.layout(kT, kH, kW);
  const int64_t n = layout.tokens();
  ASSERT_EQ(n, int64_t(kT) * kH * kW);
  // The same tokens in the backend's order.
  std::vector<float> q(g.q.size()), k(g.k.size()), v(g.v.size());
  for (const auto& [src, dst] : {std::pair{&g.q, &q}, std::pair{&g.k, &k}, std::pair{&g.v, &v}})
    layout.permute(src->data(), dst->data(), kDh);
  std::vector<float> out(q.size());
  AttendReport r;
  for (int step : {8, 9}) {  // two late steps: methods that profile or refresh have run once
    AttentionInputs in{q.data(), k.data(), v.data(), 1, 1, n, kDh, &layout};
    r = b.attend(in, out.data(), AttentionContext{step, 10, 20, 30});
  }
  EXPECT_GT(r.density, 0.0) << spec;
  EXPECT_LE(r.density, 1.0) << spec;
  for (float o : out) ASSERT_TRUE(std::isfinite(o)) << spec;
  std::mt19937_64 rng(7);
  std::vector<int64_t> rows = {0, n - 1, kH * kW - 1, n - kH * kW, n / 2};
  for (int i = 0; i < 35; ++i) rows.push_back(int64_t(rng() % uint64_t(n)));
  const double scale = 1.0 / std::sqrt(double(kDh));
  // svg2 keeps cluster pairs: a token's own key is attended only when its key cluster is kept for
  // its query cluster (as in SVG2); every other method keeps the diagonal.
  const bool keeps_diagonal = spec.rfind("svg2", 0) != 0;
  for (int64_t i : rows) {
    if (keeps_diagonal) EXPECT_TRUE(r.allows(0, i, i)) << spec << ": row " << i << " does not attend to itself";
    std::vector<double> logit;
    std::vector<int64_t> keys;
    double mx = -1e300;
    for (int64_t j = 0; j < n; ++j) {
      if (!r.allows(0, i, j)) continue;
      double s = 0;
      for (int c = 0; c < kDh; ++c) s += double(q[size_t(i * kDh + c)]) * k[size_t(j * kDh + c)];
      logit.push_back(s * scale), keys.push_back(j), mx = std::max(mx, s * scale);
    }
    std::vector<double> acc(kDh, 0.0);
    double z = 0;
    for (size_t a = 0; a < keys.size(); ++a) {
      const double p = std::exp(logit[a] - mx);
      z += p;
      for (int c = 0; c < kDh; ++c) acc[size_t(c)] += p * v[size_t(keys[a] * kDh + c)];
    }
    for (int c = 0; c < kDh; ++c)
      ASSERT_NEAR(out[size_t(i * kDh + c)], acc[size_t(c)] / z, 2e-5) << spec << ": row " << i << " channel " << c;
  }
  std::printf("%-10s density %.3f\n", spec.c_str(), r.density);
}

TEST(SparseWanGrid, EveryMethodRunsOnTheRaggedGrid) {
  const Grid g;
  for (const MethodInfo& m : methods()) {
    std::unique_ptr<AttentionBackend> b;
    if (m.name == "paro") {
      // paro runs from a calibration: made here on the same grid (one dense calibration step).
      ParoCalibrator cal(64, 0.9, 0.25, 1);
      std::vector<float> out(g.q.size());
      const TokenLayout layout = cal.layout(kT, kH, kW);
      std::vector<float> q(g.q.size()), k(g.k.size()), v(g.v.size());
      for (const auto& [src, dst] : {std::pair{&g.q, &q}, std::pair{&g.k, &k}, std::pair{&g.v, &v}})
        layout.permute(src->data(), dst->data(), kDh);
      cal.attend(AttentionInputs{q.data(), k.data(), v.data(), 1, 1, layout.tokens(), kDh, &layout}, out.data(),
                 AttentionContext{0, 1, 0, 1});
      const std::string path = testing::TempDir() + "sparse_wan_grid_paro.json";
      cal.result().write(path);
      b = make_backend("paro:calib=" + path);
    } else {
      b = make_backend(m.name);
    }
    check_method(m.name, *b, g);
  }
}

}  // namespace
