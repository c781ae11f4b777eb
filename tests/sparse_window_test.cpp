// 3D sliding tile window: clamped centres, the first-frame sink, and pooled tile summaries.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "attention/kernel/kernel.h"
#include "attention/spec.h"
#include "attention/mask/window.h"

using namespace ditgen;
using namespace ditgen::attn;

TEST(SparseWindow, StartIsClampedSoBorderWindowsStayFull) {
  EXPECT_EQ(window_start(0, 3, 10), 0);
  EXPECT_EQ(window_start(1, 3, 10), 0);
  EXPECT_EQ(window_start(5, 3, 10), 4);
  EXPECT_EQ(window_start(9, 3, 10), 7);
  EXPECT_EQ(window_start(2, 5, 3), 0);  // window larger than the grid: everything
  EXPECT_EQ(window_start(5, 4, 10), 3);  // even: 2 before, 1 after
  EXPECT_EQ(window_start(0, 1, 4), 0);
  EXPECT_EQ(window_start(3, 1, 4), 3);
}

TEST(SparseWindow, EveryQuerySeesAFullWindow) {
  WindowRule rule;
  rule.tile = {1, 2, 2};
  rule.window = {3, 3, 3};
  rule.sink = false;
  const TokenLayout l = tile_layout(6, 10, 8, rule.tile);  // 6 x 5 x 4 tiles
  WindowMask m(l, rule);
  for (int64_t q = 0; q < l.tokens(); q += 7) {
    int keys = 0;
    for (int64_t k = 0; k < l.tokens(); ++k) keys += m.allowed(q, k);
    EXPECT_EQ(keys, 3 * 3 * 3 * 4) << "query " << q;  // 27 tiles of 4 tokens
  }
}

TEST(SparseWindow, SinkAddsTheFirstFrame) {
  WindowRule rule;
  rule.tile = {1, 4, 4};
  rule.window = {1, 1, 1};
  const TokenLayout l = tile_layout(4, 8, 8, rule.tile);
  WindowMask m(l, rule);
  const int64_t q = l.inverse()[size_t(l.frame_major_index(3, 0, 0))];
  int keys = 0;
  for (int64_t k = 0; k < l.tokens(); ++k) keys += m.allowed(q, k);
  EXPECT_EQ(keys, 16 + 64);  // own tile + frame 0
}

TEST(SparseWindow, SummaryTokensMatchTheirDefinition) {
  const int heads = 2, dh = 8;
  const int tp = 4, hp = 8, wp = 8;
  auto b = make_backend("window:tile=2x4x4,window=1x1x1,summary=1,block=32,dense_steps=0");
  const TokenLayout l = b->layout(tp, hp, wp);
  const int64_t n = l.tokens();
  std::mt19937 g(5);
  std::normal_distribution<float> d;
  std::vector<float> q(size_t(heads * n * dh)), k(q.size()), v(q.size()), out(q.size());
  for (auto* a : {&q, &k, &v})
    for (float& f : *a) f = d(g);
  AttentionInputs in{q.data(), k.data(), v.data(), 1, heads, n, dh, &l};
  const AttendReport report = b->attend(in, out.data(), AttentionContext{0, 1, 0, 1});
  // Manual: mean k and v of each tile appended, reference attention under the summary mask.
  WindowRule rule;
  rule.tile = {2, 4, 4};
  rule.window = {1, 1, 1};
  WindowMask w(l, rule);
  const int tiles = w.num_tiles();
  ASSERT_EQ(tiles, 2 * 2 * 2);
  const int64_t n2 = n + tiles;
  std::vector<float> q2(size_t(heads * n2 * dh), 0.0f), k2(q2.size(), 0.0f), v2(q2.size(), 0.0f), o2(q2.size());
  for (int h = 0; h < heads; ++h)
    for (int64_t i = 0; i < n; ++i)
      for (int c = 0; c < dh; ++c) {
        const size_t s = size_t((h * n + i) * dh + c);
        q2[size_t((h * n2 + i) * dh + c)] = q[s];
        k2[size_t((h * n2 + i) * dh + c)] = k[s];
        v2[size_t((h * n2 + i) * dh + c)] = v[s];
        k2[size_t((h * n2 + n + w.tile_of(i)) * dh + c)] += k[s] / 32.0f;
        v2[size_t((h * n2 + n + w.tile_of(i)) * dh + c)] += v[s] / 32.0f;
      }
  WindowSummaryMask sm(w, n);
  const BlockMap e = element_map(sm, n2, 32);
  reference_attention(self_attention(q2.data(), k2.data(), v2.data(), o2.data(), heads, n2, dh, &e));
  double err = 0;
  for (int h = 0; h < heads; ++h)
    for (int64_t i = 0; i < n * dh; ++i) err = std::max(err, double(std::fabs(out[size_t(h * n * dh + i)] - o2[size_t(h * n2 * dh + i)])));
  EXPECT_LT(err, 2e-5);
  // A query sees its own tile, the sink frame and the summaries of the 7 other tiles.
  const int64_t qpos = l.inverse()[size_t(l.frame_major_index(3, 5, 5))];
  int keys = 0;
  for (int64_t kk = 0; kk < n2; ++kk) keys += sm.allowed(qpos, kk);
  EXPECT_EQ(keys, 32 + 64 + 7);
  EXPECT_GT(report.density, 0.0);
  EXPECT_LT(report.density, 1.0);
}
