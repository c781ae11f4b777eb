// Masks compiled to block maps: coverage, exact partial masks, and the kernel's output under a
// compiled map against the double-precision reference under the element mask.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "attention/kernel/kernel.h"
#include "attention/mask/mask.h"
#include "attention/mask/radial.h"
#include "attention/mask/reorder.h"
#include "attention/mask/window.h"

using namespace ditgen;
using namespace ditgen::attn;

namespace {

// Every allowed pair is computed, every full block is wholly allowed, and partial blocks carry
// exactly the predicate's bits; skipped blocks hold no allowed pair.
void expect_map_matches(const PairMask& mask, const BlockMap& m, int map_index = 0) {
  const int64_t n = m.tokens;
  const int b = m.block, nb = m.num_blocks();
  for (int qb = 0; qb < nb; ++qb) {
    const int64_t r = m.row(map_index, qb);
    std::vector<int> kind(size_t(nb), 0);  // 0 skipped, 1 full, 2 partial
    std::vector<int64_t> entry(size_t(nb), -1);
    for (int64_t e = m.full_ptr[size_t(r)]; e < m.full_ptr[size_t(r + 1)]; ++e) kind[size_t(m.full_cols[size_t(e)])] = 1;
    for (int64_t e = m.partial_ptr[size_t(r)]; e < m.partial_ptr[size_t(r + 1)]; ++e) {
      kind[size_t(m.partial_cols[size_t(e)])] = 2;
      entry[size_t(m.partial_cols[size_t(e)])] = e;
    }
    for (int kb = 0; kb < nb; ++kb)
      for (int64_t i = int64_t(qb) * b; i < std::min(n, int64_t(qb + 1) * b); ++i)
        for (int64_t j = int64_t(kb) * b; j < std::min(n, int64_t(kb + 1) * b); ++j) {
          const bool a = mask.allowed(i, j);
          const int k = kind[size_t(kb)];
          if (k == 0) {
            ASSERT_FALSE(a) << "allowed pair " << i << "," << j << " not computed";
          } else if (k == 1) {
            ASSERT_TRUE(a) << "full block holds a masked pair " << i << "," << j;
          } else {
            ASSERT_EQ(a, BlockMap::bit(m.partial_mask(entry[size_t(kb)]), b, int(i - int64_t(qb) * b), int(j - int64_t(kb) * b)))
                << "partial bit differs at " << i << "," << j;
          }
        }
  }
}

struct Qkv {
  std::vector<float> q, k, v;
};
Qkv random_qkv(int heads, int64_t n, int dh, unsigned seed) {
  std::mt19937 g(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  Qkv x;
  for (auto* a : {&x.q, &x.k, &x.v}) {
    a->resize(size_t(heads) * size_t(n) * size_t(dh));
    for (float& f : *a) f = d(g);
  }
  return x;
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, double(std::fabs(a[i] - b[i])));
  return m;
}

}  // namespace

TEST(SparseMask, WindowMapMatchesPredicateInEveryLayout) {
  for (const char* name : {"frame", "tile", "transpose", "wht"}) {
    const TokenLayout l = make_layout(name, 5, 8, 8, {2, 4, 4});
    WindowRule rule;
    rule.tile = {2, 4, 4};
    rule.window = {1, 1, 2};
    WindowMask mask(l, rule);
    for (int block : {16, 32, 40}) {
      const BlockMap m = compile_mask(mask, l.tokens(), block);
      expect_map_matches(mask, m);
    }
  }
}

TEST(SparseMask, RadialTokenMapMatchesPredicate) {
  RadialRule rule;
  rule.block = 16;
  rule.decay = 0.5;
  const TokenLayout l = make_layout("tile", 9, 6, 6, {1, 3, 3});
  RadialTokenMask mask(l, rule);
  expect_map_matches(mask, compile_mask(mask, l.tokens(), 32));
}

TEST(SparseMask, Radial3dMapMatchesPredicateInEveryLayout) {
  // Block sizes that cut tiles and frames, so that partial blocks occur and carry exact bits.
  Radial3dRule rule;
  rule.decay = 0.7;
  rule.tile = {1, 4, 4};
  for (const char* name : {"frame", "tile", "transpose"}) {
    const TokenLayout l = make_layout(name, 11, 8, 12, rule.tile);
    Radial3dMask mask(l, rule);
    for (int block : {16, 24, 40}) {
      const BlockMap m = compile_mask(mask, l.tokens(), block);
      expect_map_matches(mask, m);
      if (block != 16) EXPECT_GT(m.partial_fraction(), 0.0) << name << " block " << block;
    }
  }
}

TEST(SparseMask, AlignedTileWindowIsAllFullBlocks) {
  // Tile volume = block: every computed block is a whole tile pair.
  const TokenLayout l = tile_layout(8, 8, 8, {2, 4, 4});
  WindowRule rule;
  rule.tile = {2, 4, 4};
  rule.window = {1, 1, 1};
  rule.sink = false;
  const BlockMap m = compile_mask(WindowMask(l, rule), l.tokens(), 32);
  EXPECT_EQ(m.partial_fraction(), 0.0);
  EXPECT_NEAR(m.pair_density(), 1.0 / 16.0, 1e-12);  // 1 of 4*2*2 tiles
}

TEST(SparseMask, KernelMatchesReferenceUnderTheSameMask) {
  const int heads = 2, dh = 16;
  const TokenLayout l = make_layout("tile", 4, 8, 8, {2, 4, 4});
  WindowRule rule;
  rule.tile = {2, 4, 4};
  rule.window = {1, 1, 1};
  WindowMask wmask(l, rule);
  FunctionMask fmask([&](int64_t i, int64_t j) { return (i * 7 + j * 3) % 5 < 2 || i == j; });
  for (const PairMask* mask : {static_cast<const PairMask*>(&wmask), static_cast<const PairMask*>(&fmask)}) {
    const int64_t n = l.tokens();
    const Qkv x = random_qkv(heads, n, dh, 7);
    const BlockMap m = compile_mask(*mask, n, 32);
    const BlockMap e = element_map(*mask, n, 32);
    EXPECT_EQ(e.partial_fraction(), 1.0);
    std::vector<float> out(x.q.size()), ref(x.q.size());
    AttentionKernel().run(self_attention(x.q.data(), x.k.data(), x.v.data(), out.data(), heads, n, dh, &m));
    reference_attention(self_attention(x.q.data(), x.k.data(), x.v.data(), ref.data(), heads, n, dh, &e));
    EXPECT_LT(max_abs_diff(out, ref), 2e-5);
  }
}

TEST(SparseMask, AllOnesMaskEqualsDense) {
  const int heads = 3, dh = 8;
  const int64_t n = 150;
  const Qkv x = random_qkv(heads, n, dh, 3);
  FunctionMask ones([](int64_t, int64_t) { return true; });
  const BlockMap m = compile_mask(ones, n, 32);
  EXPECT_EQ(m.pair_density(), 1.0);
  EXPECT_EQ(m.partial_fraction(), 0.0);
  std::vector<float> a(x.q.size()), b(x.q.size()), r(x.q.size());
  AttentionKernel().run(self_attention(x.q.data(), x.k.data(), x.v.data(), a.data(), heads, n, dh, &m));
  const BlockMap d = BlockMap::dense(n, 32);
  AttentionKernel().run(self_attention(x.q.data(), x.k.data(), x.v.data(), b.data(), heads, n, dh, &d));
  reference_attention(self_attention(x.q.data(), x.k.data(), x.v.data(), r.data(), heads, n, dh, nullptr));
  EXPECT_EQ(a, b);
  EXPECT_LT(max_abs_diff(a, r), 2e-5);
}

TEST(SparseMask, MultipleMapsFollowHeadMap) {
  const int64_t n = 96;
  FunctionMask diag([](int64_t i, int64_t j) { return std::abs(i - j) < 4; });
  FunctionMask ones([](int64_t, int64_t) { return true; });
  const BlockMap m = compile_masks({&diag, &ones}, n, 16, {1, 0});
  EXPECT_EQ(m.num_maps, 2);
  expect_map_matches(diag, m, 0);
  expect_map_matches(ones, m, 1);
  EXPECT_EQ(m.map_of_head(0), 1);
  EXPECT_EQ(m.map_of_head(3), 0);  // head 3 of batch 2 = head 1
  const BlockMap a = compile_mask(diag, n, 16), b = compile_mask(ones, n, 16);
  const BlockMap s = stack_maps({&a, &b}, {1, 0});
  EXPECT_EQ(s.full_cols, m.full_cols);
  EXPECT_EQ(s.partial_bits, m.partial_bits);
}

TEST(SparseMask, EmptyRowIsRejected) {
  FunctionMask none([](int64_t i, int64_t) { return i != 5; });
  EXPECT_THROW(compile_mask(none, 40, 16), std::invalid_argument);
}

TEST(SparseMask, CacheCompilesOncePerShape) {
  MapCache cache;
  int builds = 0;
  FunctionMask ones([](int64_t, int64_t) { return true; });
  const TokenLayout a(2, 4, 4), b = tile_layout(2, 4, 4, {1, 2, 2}), c(3, 4, 4);
  for (int rep = 0; rep < 3; ++rep)
    for (const TokenLayout* l : {&a, &b, &c})
      cache.get(*l, 16, "x", [&] {
        ++builds;
        return compile_mask(ones, l->tokens(), 16);
      });
  EXPECT_EQ(builds, 3);
  EXPECT_EQ(cache.size(), 3u);
}

TEST(SparseMask, StatsReportDensities) {
  FunctionMask half([](int64_t i, int64_t j) { return j < 32 || i == j; });
  const BlockMap m = compile_mask(half, 64, 16);
  const MapStats s = map_stats(m, "half");
  EXPECT_DOUBLE_EQ(s.block_density, (4.0 * 2 + 2) / 16.0);  // two sink columns + two diagonal blocks
  EXPECT_DOUBLE_EQ(s.pair_density, s.block_density);
  EXPECT_DOUBLE_EQ(s.partial_fraction, 2.0 / 10.0);
  EXPECT_NEAR(s.attended_density, (64.0 * 32 + 32) / 4096.0, 1e-12);
}
