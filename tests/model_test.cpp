// The DiT forward pass: shapes, determinism, layout invariance, conditioning and the guards.
#include <gtest/gtest.h>

#include <numeric>

#include "attention/backend.h"
#include "dit/model.h"
#include "tests/model_util.h"
#include "tests/test_util.h"

namespace ditgen {
namespace {

DiTConfig small_config() {
  DiTConfig c = test::small_config();
  c.dim = 48;
  c.ffn_dim = 96;  // Dh = 24
  c.ctx_dim = 20;
  c.patch_h = c.patch_w = 2;
  c.in_channels = 2;
  return c;
}

// Dense attention in a reversed token order: the model's output must not depend on it.
class ReversedDense : public attn::DenseBackend {
 public:
  TokenLayout layout(int tp, int hp, int wp) const override {
    std::vector<int32_t> order(size_t(tp) * hp * wp);
    for (size_t i = 0; i < order.size(); ++i) order[i] = int32_t(order.size() - 1 - i);
    return TokenLayout(tp, hp, wp, order, "reversed");
  }
};

struct RunOut {
  std::vector<float> out;
  std::vector<Tensor> blocks;
};

RunOut run(pipeline::Model& m, attn::AttentionBackend& backend, const LatentShape& s, const std::vector<float>& x, double t,
        const std::vector<std::vector<int>>& labels) {
  const int batch = int(labels.size());
  RunOut r;
  r.out.assign(x.size(), NAN);
  std::vector<double> ts(size_t(batch), t);
  m.dit->set_capture(&r.blocks);
  m.dit->forward(x.data(), s, batch, ts.data(), test::label_rows(m, labels), backend, {}, r.out.data());
  m.dit->set_capture(nullptr);
  return r;
}

TEST(Model, ForwardShapesAndDeterminism) {
  const DiTConfig c = small_config();
  pipeline::Model m = test::random_model(c, 7);
  attn::DenseBackend dense;
  auto rng = test::fresh_rng();
  for (LatentShape s : {LatentShape{1, 8, 6}, LatentShape{3, 4, 8}}) {  // T = 1 is an image: same path
    const size_t n = size_t(2) * s.frames * s.height * s.width * c.in_channels;
    auto x = test::random_vector(n, rng);
    RunOut a = run(m, dense, s, x, 500.0, {{3, 7}, {10, 10}});
    RunOut b = run(m, dense, s, x, 500.0, {{3, 7}, {10, 10}});
    for (float v : a.out) ASSERT_TRUE(std::isfinite(v));
    EXPECT_EQ(a.out, b.out);
    ASSERT_EQ(a.blocks.size(), size_t(c.num_layers));
    EXPECT_EQ(a.blocks[0].shape(), (std::vector<int64_t>{2, c.tokens(s), c.dim}));
    // The two batch entries have different conditions, so different outputs.
    EXPECT_GT(test::max_abs_diff(a.out.data(), a.out.data() + n / 2, n / 2), 1e-4);
  }
}

TEST(Model, RiflexAppliesToTheRunsAfterItIsSetAndUntilItIsCleared) {
  // The rotary tables are cached per shape: setting or clearing the extrapolation must rebuild
  // them, so the same input gives the plain output, then another, then the plain one again.
  const DiTConfig c = small_config();
  pipeline::Model m = test::random_model(c, 9);
  attn::DenseBackend dense;
  auto rng = test::fresh_rng();
  const LatentShape s{4, 4, 4};
  auto x = test::random_vector(size_t(s.frames) * s.height * s.width * c.in_channels, rng);
  const RunOut plain = run(m, dense, s, x, 500.0, {{3, 7}});
  m.dit->set_rope_extrapolation(RopeExtrapolation{1});
  const RunOut riflex = run(m, dense, s, x, 500.0, {{3, 7}});
  EXPECT_GT(test::max_abs_diff(plain.out.data(), riflex.out.data(), x.size()), 1e-6);
  m.dit->set_rope_extrapolation({});
  EXPECT_EQ(run(m, dense, s, x, 500.0, {{3, 7}}).out, plain.out);
  const int pairs = c.rope_dims_t() / 2;
  EXPECT_THROW(m.dit->set_rope_extrapolation(RopeExtrapolation{pairs + 1}), std::invalid_argument);
  EXPECT_THROW(m.dit->set_rope_extrapolation(RopeExtrapolation{-1}), std::invalid_argument);
  EXPECT_EQ(m.dit->rope_extrapolation().riflex_k, 0) << "a refused value leaves the setting as it was";
}

TEST(Model, BatchEntriesAreIndependent) {
  const DiTConfig c = small_config();
  pipeline::Model m = test::random_model(c, 8);
  attn::DenseBackend dense;
  auto rng = test::fresh_rng();
  const LatentShape s{2, 4, 4};
  const size_t n = size_t(s.frames) * s.height * s.width * c.in_channels;
  auto x = test::random_vector(2 * n, rng);
  RunOut both = run(m, dense, s, x, 300.0, {{1, 2}, {4, 5}});
  std::vector<float> second(x.begin() + long(n), x.end());
  RunOut alone = run(m, dense, s, second, 300.0, {{4, 5}});
  EXPECT_LT(test::max_abs_diff(both.out.data() + n, alone.out.data(), n), 1e-5);
}

TEST(Model, OutputIsIndependentOfTheTokenOrder) {
  const DiTConfig c = small_config();
  pipeline::Model m1 = test::random_model(c, 9), m2 = test::random_model(c, 9);
  attn::DenseBackend dense;
  ReversedDense reversed;
  auto rng = test::fresh_rng();
  const LatentShape s{3, 6, 4};
  auto x = test::random_vector(size_t(s.frames) * s.height * s.width * c.in_channels, rng);
  RunOut a = run(m1, dense, s, x, 700.0, {{0, 9}});
  RunOut b = run(m2, reversed, s, x, 700.0, {{0, 9}});
  EXPECT_FALSE(m2.dit->layout().is_identity());
  // Same math in another summation order: float rounding only.
  EXPECT_LT(test::nmse(b.out.data(), a.out.data(), a.out.size()), 1e-10);
  for (size_t l = 0; l < a.blocks.size(); ++l)
    EXPECT_LT(test::nmse(b.blocks[l].data(), a.blocks[l].data(), size_t(a.blocks[l].size())), 1e-10) << "block " << l;
}

TEST(Model, GuardsNameTheProblem) {
  const DiTConfig c = small_config();
  pipeline::Model m = test::random_model(c, 1);
  attn::DenseBackend dense;
  std::vector<float> x(size_t(3 * 4 * 4 * 2)), out(x.size());
  double t = 0;
  // Frames not divisible by the patch.
  DiTConfig c2 = c;
  c2.patch_t = 2;
  pipeline::Model m2 = test::random_model(c2, 1);
  try {
    m2.dit->forward(x.data(), LatentShape{3, 4, 4}, 1, &t, test::label_rows(m2, {{1, 2}}), dense, {}, out.data());
    FAIL() << "expected an error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("frames = 3"), std::string::npos) << e.what();
  }
  // Label out of range.
  EXPECT_THROW(test::label_rows(m, {{1, 11}}), std::invalid_argument);
  EXPECT_THROW(test::label_rows(m, {{1}}), std::invalid_argument);
  EXPECT_THROW(m.conditioner->context(Condition::of_labels({1, 10}), true), std::invalid_argument);  // 10: the null label
  // A NaN weight surfaces as a NumericalError naming the block.
  DiTWeights w = DiTWeights::random(c, 2);
  w.blocks[1].ffn2.bias[0] = NAN;
  pipeline::Model bad = pipeline::assemble_model(c, std::move(w));
  std::vector<float> x1(size_t(1 * 4 * 4 * 2), 0.5f), o1(x1.size());
  try {
    bad.dit->forward(x1.data(), LatentShape{1, 4, 4}, 1, &t, test::label_rows(bad, {{1, 2}}), dense, {}, o1.data());
    FAIL() << "expected a NumericalError";
  } catch (const NumericalError& e) {
    EXPECT_EQ(e.layer(), 1);
  }
}

}  // namespace
}  // namespace ditgen
