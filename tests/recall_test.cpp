// AttendReport::allows() and attention recall: every method's output row equals exact softmax
// attention restricted to the keys the report allows, recall is 1 for the full mask and
// falls as the mask shrinks.
#include <gtest/gtest.h>

#include <cmath>

#include "attention/sparse/recall_probe.h"
#include "attention/spec.h"
#include "tests/test_util.h"

namespace ditgen::attn {
namespace {

struct Problem {
  TokenLayout layout{4, 8, 8};
  int batch = 2, heads = 2, dh = 16;
  int64_t n() const { return layout.tokens(); }
  std::vector<float> q, k, v;
  explicit Problem(std::mt19937_64& rng, float sharpness) {
    const size_t size = size_t(batch) * heads * size_t(n()) * dh;
    q = test::random_vector(size, rng, sharpness);
    k = test::random_vector(size, rng, 1.0f);
    v = test::random_vector(size, rng, 1.0f);
  }
  AttentionInputs inputs(const TokenLayout& l) const {
    AttentionInputs in;
    in.q = q.data(), in.k = k.data(), in.v = v.data();
    in.batch = batch, in.heads = heads, in.tokens = n(), in.head_dim = dh, in.layout = &l;
    return in;
  }
};

const char* kSpecs[] = {
    "dense:block=16",
    "radial:block=16,dense_steps=0,dense_layers=0",
    "radial3d:block=16,tile=1x4x4,dense_steps=0,dense_layers=0",
    "window:window=1x1x1,tile=2x4x4,block=16,dense_steps=0",
    "window:window=1x1x1,tile=2x4x4,block=16,dense_steps=0,sink=0",
    "svg:density=0.3,block=16,rows=16,dense_steps=0,dense_layers=0",
    "topp:p=0.5,block=16,dense_steps=0",
};

TEST(Recall, OutputRowsEqualAttentionOverTheAllowedKeys) {
  auto rng = test::fresh_rng();
  for (const char* spec : kSpecs) {
    auto backend = make_backend(spec);
    Problem p(rng, 1.0f);
    const TokenLayout layout = backend->layout(p.layout.frames(), p.layout.height(), p.layout.width());
    // Inputs are drawn in the engine's order for this layout, so any order is fine.
    std::vector<float> out(p.q.size(), NAN);
    AttentionContext ctx;
    ctx.step = 5, ctx.num_steps = 10, ctx.layer = 1, ctx.num_layers = 2;
    const AttendReport report = backend->attend(p.inputs(layout), out.data(), ctx);
    std::uniform_int_distribution<int64_t> pick(0, p.n() - 1);
    for (int h = 0; h < p.batch * p.heads; ++h)
      for (int r = 0; r < 6; ++r) {
        const int64_t i = pick(rng);
        const float* qi = p.q.data() + (int64_t(h) * p.n() + i) * p.dh;
        std::vector<double> acc(static_cast<size_t>(p.dh), 0.0);
        double mx = -INFINITY, sum = 0;
        std::vector<double> s(static_cast<size_t>(p.n()), -INFINITY);
        for (int64_t j = 0; j < p.n(); ++j) {
          if (!report.allows(h, i, j)) continue;
          double d = 0;
          for (int c = 0; c < p.dh; ++c) d += double(qi[c]) * p.k[size_t((int64_t(h) * p.n() + j) * p.dh + c)];
          s[size_t(j)] = d / std::sqrt(double(p.dh));
          mx = std::max(mx, s[size_t(j)]);
        }
        ASSERT_TRUE(std::isfinite(mx)) << spec << ": row " << i << " attends to nothing";
        for (int64_t j = 0; j < p.n(); ++j) {
          if (!std::isfinite(s[size_t(j)])) continue;
          const double w = std::exp(s[size_t(j)] - mx);
          sum += w;
          for (int c = 0; c < p.dh; ++c) acc[size_t(c)] += w * p.v[size_t((int64_t(h) * p.n() + j) * p.dh + c)];
        }
        for (int c = 0; c < p.dh; ++c)
          ASSERT_NEAR(out[size_t((int64_t(h) * p.n() + i) * p.dh + c)], acc[size_t(c)] / sum, 2e-4)
              << spec << " head " << h << " row " << i << " dim " << c;
      }
  }
}

double recall_of(const std::string& spec, uint64_t seed) {
  std::mt19937_64 rng(seed);
  auto backend = make_backend(spec);
  RecallProbe probe(*backend, 32, seed);
  Problem p(rng, 2.0f);  // sharper attention, as trained models have
  const TokenLayout layout = probe.layout(p.layout.frames(), p.layout.height(), p.layout.width());
  std::vector<float> out(p.q.size());
  AttentionContext ctx;
  ctx.step = 9, ctx.num_steps = 10;
  probe.attend(p.inputs(layout), out.data(), ctx);
  return probe.mean_recall();
}

TEST(Recall, OneForTheFullMaskAndFallingAsTheMaskShrinks) {
  const uint64_t seed = std::random_device{}();
  EXPECT_DOUBLE_EQ(recall_of("dense:block=16", seed), 1.0);
  const double wide = recall_of("topp:p=0.95,block=16", seed);
  const double mid = recall_of("topp:p=0.6,block=16", seed);
  const double narrow = recall_of("topp:p=0.2,block=16", seed);
  EXPECT_LT(wide, 1.0);
  EXPECT_GT(wide, mid) << "seed " << seed;
  EXPECT_GT(mid, narrow) << "seed " << seed;
  EXPECT_GT(narrow, 0.0);
}

}  // namespace
}  // namespace ditgen::attn
