// Step-aware dense-to-sparse switching: fixed counts, fractions, dense layers and auto.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>

#include "attention/sparse/schedule.h"
#include "attention/sparse/sparse_backend.h"
#include "attention/spec.h"
#include "tests/test_util.h"

using namespace ditgen;
using namespace ditgen::attn;

namespace {

struct Runner {
  int heads = 2, dh = 8;
  TokenLayout layout;
  std::vector<float> q, k, v, out;
  explicit Runner(const AttentionBackend& b, bool constant_v = false, int frames = 4) : layout(b.layout(frames, 8, 8)) {
    const int64_t n = layout.tokens();
    std::mt19937 g(11);
    std::normal_distribution<float> d;
    for (auto* a : {&q, &k, &v}) {
      a->resize(size_t(heads) * size_t(n) * size_t(dh));
      for (float& f : *a) f = d(g);
    }
    if (constant_v)
      for (size_t i = 0; i < v.size(); ++i) v[i] = float(i % size_t(dh));
    out.resize(q.size());
  }
  double call(AttentionBackend& b, int step, int steps, int layer, int layers) {
    AttentionInputs in{q.data(), k.data(), v.data(), 1, heads, layout.tokens(), dh, &layout};
    return b.attend(in, out.data(), AttentionContext{step, steps, layer, layers}).density;
  }
};

}  // namespace

TEST(SparseSchedule, ParsesCountsFractionsAndAuto) {
  EXPECT_EQ(DenseSchedule::parse("3", 0).fixed_dense_steps(50), 3);
  EXPECT_EQ(DenseSchedule::parse("0.25", 0).fixed_dense_steps(50), 12);  // radial: 12 of 50
  EXPECT_EQ(DenseSchedule::parse("0.2", 0).fixed_dense_steps(50), 10);   // svg: 10 of 50
  EXPECT_EQ(DenseSchedule::parse("0.25", 0).fixed_dense_steps(20), 5);
  EXPECT_EQ(DenseSchedule::parse("1.0", 0).steps_str(), "1.0");
  EXPECT_EQ(DenseSchedule::parse("1", 0).steps_str(), "1");
  EXPECT_EQ(DenseSchedule::parse("auto", 2).kind, DenseSchedule::Kind::Auto);
  EXPECT_THROW(DenseSchedule::parse("1.5", 0), std::invalid_argument);
  EXPECT_THROW(DenseSchedule::parse("-1", 0), std::invalid_argument);
  EXPECT_THROW(DenseSchedule::parse("some", 0), std::invalid_argument);
  EXPECT_THROW(DenseSchedule::parse("2", -1), std::invalid_argument);
}

TEST(SparseSchedule, FixedCountSwitchesAtTheStepItSays) {
  auto b = make_backend("window:tile=1x4x4,window=1x1x1,block=16,dense_steps=3,dense_layers=1");
  Runner r(*b);
  for (int step = 0; step < 6; ++step)
    for (int layer = 0; layer < 3; ++layer) {
      const double d = r.call(*b, step, 6, layer, 3);
      if (step < 3 || layer < 1) EXPECT_EQ(d, 1.0) << step << " " << layer;
      else EXPECT_LT(d, 0.5) << step << " " << layer;
    }
}

TEST(SparseSchedule, FractionOfTheRun) {
  auto b = make_backend("window:tile=1x4x4,window=1x1x1,block=16,dense_steps=0.25,dense_layers=0");
  Runner r(*b);
  EXPECT_EQ(r.call(*b, 4, 20, 0, 1), 1.0);  // floor(0.25 * 20) = 5 dense steps
  EXPECT_LT(r.call(*b, 5, 20, 0, 1), 1.0);
  EXPECT_EQ(r.call(*b, 1, 10, 0, 1), 1.0);  // floor(2.5) = 2 dense steps
  EXPECT_LT(r.call(*b, 2, 10, 0, 1), 1.0);
}

TEST(SparseSchedule, AutoSwitchesEachLayerOnceTheErrorIsSmall) {
  // Constant values per channel: every mask gives the dense output, the error is 0.
  auto b = make_backend("window:tile=1x4x4,window=1x1x1,block=16,dense_steps=auto,dense_layers=1,auto_tol=0.01");
  Runner r(*b, true);
  for (int layer = 0; layer < 3; ++layer) EXPECT_EQ(r.call(*b, 0, 4, layer, 3), 1.0);  // estimate at step 0
  EXPECT_EQ(r.call(*b, 1, 4, 0, 3), 1.0);  // dense layer
  EXPECT_LT(r.call(*b, 1, 4, 1, 3), 1.0);
  EXPECT_LT(r.call(*b, 1, 4, 2, 3), 1.0);
  auto* sb = dynamic_cast<SparseBackend*>(b.get());
  ASSERT_NE(sb, nullptr);
  EXPECT_EQ(sb->auto_switch_steps(), (std::vector<int>{-1, 1, 1}));
  const auto j = nlohmann::json::parse(b->report_json());
  EXPECT_EQ(j["auto"]["switch_step"], nlohmann::json::parse("[-1, 1, 1]"));
  // A new run (the step goes back) starts dense again.
  EXPECT_EQ(r.call(*b, 0, 4, 1, 3), 1.0);
}

TEST(SparseSchedule, AutoStaysDenseWhileTheErrorIsLarge) {
  auto b = make_backend("window:tile=1x4x4,window=1x1x1,block=16,dense_steps=auto,dense_layers=0,auto_tol=0.001");
  Runner r(*b);
  for (int step = 0; step < 4; ++step) EXPECT_EQ(r.call(*b, step, 4, 0, 1), 1.0);
  const auto j = nlohmann::json::parse(b->report_json());
  EXPECT_EQ(j["auto"]["switch_step"][0], -1);
  EXPECT_GT(j["auto"]["last_error"][0].get<double>(), 0.001);
}

TEST(SparseSchedule, OneWalkAnchorWithPartialBlocksGivesDenseAndTheResidual) {
  // radial (token mask) at 8 frames with 16-token blocks has partial blocks: the complement walk must
  // take their other pairs. Anchor (step 0): the dense output, partial blocks paid twice; the
  // next step on the same inputs: sparse + (dense - sparse) = dense.
  const std::string sparse = "radial:decay=0.5,shrink=0,block=16,dense_layers=0,dense_steps=1,refresh=4,fallback=none";
  auto reuse = make_backend(sparse);
  auto dense = make_backend("dense:block=16");
  Runner r(*reuse, false, 8), rd(*dense, false, 8);
  rd.call(*dense, 0, 6, 0, 1);
  const BlockMap map = dynamic_cast<SparseBackend&>(*reuse).preview(r.layout).front().second;
  ASSERT_FALSE(map.partial_cols.empty());
  ASSERT_LT(map.pair_density(), 1.0);
  const double anchor = r.call(*reuse, 0, 6, 0, 1);
  EXPECT_GT(anchor, 1.0);  // the partial blocks, once under the mask and once under its inverse
  EXPECT_LT(anchor, 1.0 + map.pair_density());
  for (size_t i = 0; i < r.out.size(); ++i) ASSERT_NEAR(r.out[i], rd.out[i], 1e-5) << i;
  EXPECT_NEAR(r.call(*reuse, 1, 6, 0, 1), map.pair_density(), 1e-12);
  for (size_t i = 0; i < r.out.size(); ++i) ASSERT_NEAR(r.out[i], rd.out[i], 1e-5) << i;
}

TEST(SparseSchedule, RefreshAnchorsTheLastDenseStepAndEveryKthAfter) {
  auto anchors = [](const std::string& dense_steps, int refresh) {
    DenseSchedule s = DenseSchedule::parse(dense_steps, 0);
    s.refresh = refresh;
    std::vector<int> out;
    for (int step = 0; step < 12; ++step)
      if (s.anchor_step(step, 12)) out.push_back(step);
    return out;
  };
  EXPECT_EQ(anchors("3", 4), (std::vector<int>{2, 6, 10}));
  EXPECT_EQ(anchors("0", 4), (std::vector<int>{0, 4, 8}));
  EXPECT_TRUE(anchors("0", 0).empty());
  EXPECT_TRUE(anchors("auto", 2).empty());
}

TEST(SparseSchedule, RefreshAddsTheResidualOfTheLastAnchor) {
  const std::string sparse = "window:tile=1x4x4,window=1x1x1,block=16,dense_layers=0,dense_steps=1";
  auto reuse = make_backend(sparse + ",refresh=3");
  auto plain = make_backend(sparse);
  auto dense = make_backend("dense:block=16");
  Runner r(*reuse), rp(*plain), rd(*dense);
  rd.call(*dense, 0, 6, 0, 1);
  const std::vector<float> dense0 = rd.out;
  const double sparse_density = rp.call(*plain, 1, 6, 0, 1);
  const std::vector<float> sparse0 = rp.out;
  ASSERT_LT(sparse_density, 0.5);
  ASSERT_GT(test::nmse(sparse0.data(), dense0.data(), dense0.size()), 1e-3);  // the mask matters here

  // Step 0 is the last dense step, so an anchor: the dense output from one walk over the blocks
  // (the map's and the rest, merged by log-sum-exp), so every pair once (no partial blocks here).
  EXPECT_NEAR(r.call(*reuse, 0, 6, 0, 1), 1.0, 1e-12);
  for (size_t i = 0; i < r.out.size(); ++i) ASSERT_NEAR(r.out[i], dense0[i], 1e-6) << i;
  // Step 1 runs sparse and adds dense - sparse of step 0: on the same inputs, the dense output.
  EXPECT_DOUBLE_EQ(r.call(*reuse, 1, 6, 0, 1), sparse_density);
  for (size_t i = 0; i < r.out.size(); ++i) ASSERT_NEAR(r.out[i], dense0[i], 1e-5) << i;
  // Step 2 on new values: sparse of the new inputs plus the residual kept from step 0.
  for (Runner* x : {&r, &rp})
    for (size_t i = 0; i < x->v.size(); ++i) x->v[i] = 0.5f * x->v[i] + float(i % 5) * 0.1f;
  r.call(*reuse, 2, 6, 0, 1);
  rp.call(*plain, 2, 6, 0, 1);
  for (size_t i = 0; i < r.out.size(); ++i) ASSERT_NEAR(r.out[i], rp.out[i] + (dense0[i] - sparse0[i]), 1e-5) << i;
  // Step 3 is the next anchor: dense again.
  EXPECT_NEAR(r.call(*reuse, 3, 6, 0, 1), 1.0, 1e-12);
  rd.v = r.v;
  rd.call(*dense, 3, 6, 0, 1);
  for (size_t i = 0; i < r.out.size(); ++i) ASSERT_NEAR(r.out[i], rd.out[i], 1e-6) << i;
  ASSERT_GT(test::nmse(r.out.data(), rp.out.data(), r.out.size()), 1e-3);  // not the sparse output
}

TEST(SparseSchedule, RefreshNeedsAFixedSchedule) {
  try {
    make_backend("radial3d:dense_steps=auto,refresh=2");
    FAIL() << "refresh with dense_steps=auto was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("refresh = 2"), std::string::npos) << e.what();
  }
  EXPECT_THROW(make_backend("radial3d:refresh=-1"), std::invalid_argument);
  EXPECT_NE(make_backend("radial3d:refresh=4")->spec().find("refresh=4"), std::string::npos);
}

TEST(SparseSchedule, RefreshStateCountsInTheMemoryEstimate) {
  // One float per (head, token, channel) for each layer that is not always dense, and the two
  // log-sum-exp rows (one float per head and token each) of a one-walk anchor.
  EXPECT_EQ(make_backend("radial3d:refresh=4,dense_layers=1")->state_bytes(100, 2, 4, 8, 8),
            7 * 2 * 4 * 100 * 8 * 4 + 2 * 2 * 4 * 100 * 4);
  EXPECT_EQ(make_backend("radial3d:refresh=0")->state_bytes(100, 2, 4, 8, 8), 0);
  EXPECT_EQ(make_backend("dense")->state_bytes(100, 2, 4, 8, 8), 0);
}

TEST(SparseSchedule, RefreshSkipsTheSparsePassWhenTheMapKeepsEveryPair) {
  // radial3d attends fully across a temporal distance of 1: two frames make a dense map, so an
  // anchor step costs one dense pass, and the steps between are dense without a residual.
  auto b = make_backend("radial3d:dense_steps=0,dense_layers=0,refresh=2");
  Runner r(*b, false, 2);
  auto d = make_backend("dense");
  Runner rd(*d, false, 2);
  rd.call(*d, 0, 4, 0, 1);
  EXPECT_EQ(r.call(*b, 0, 4, 0, 1), 1.0);
  EXPECT_EQ(r.out, rd.out);
  EXPECT_EQ(r.call(*b, 1, 4, 0, 1), 1.0);
  for (size_t i = 0; i < r.out.size(); ++i) ASSERT_NEAR(r.out[i], rd.out[i], 1e-6) << i;
}
