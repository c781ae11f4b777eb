// Radial Attention: the published rule's block densities, O(n log n) growth, and the map in
// other layouts; the 3D variant's window.
#include <gtest/gtest.h>

#include <cmath>

#include "attention/methods/methods.h"
#include "attention/mask/radial.h"
#include "attention/sparse/sparse_backend.h"

using namespace ditgen;
using namespace ditgen::attn;

namespace {

double grid_density(const std::vector<char>& g) {
  double on = 0;
  for (char c : g) on += c;
  return on / double(g.size());
}

double radial_density(int frames, int64_t tpf, double decay) {
  RadialRule r;
  r.decay = decay;
  r.block = 128;
  r.sink = true;
  return grid_density(radial_block_grid(frames, tpf, r));
}

}  // namespace

// Re-computing the published code's rule (Wan path) gives these shares of 128x128 blocks.
TEST(SparseRadial, PublishedBlockDensities) {
  // 41 x 3600 is not a multiple of 128: the map still covers every token.
  EXPECT_NO_THROW(grid_to_map([] {
    RadialRule r;
    r.decay = 1;
    return radial_block_grid(41, 3600, r);
  }(), 41 * 3600, 128));
  EXPECT_NEAR(radial_density(18, 3840, 0.2), 0.287, 0.005);  // Wan 768x1280, 69 frames, decay 0.2
  EXPECT_NEAR(radial_density(18, 3840, 1.0), 0.431, 0.005);  // same, decay 1.0
  EXPECT_NEAR(radial_density(41, 3600, 1.0), 0.260, 0.005);  // Wan 720p, 161 frames, decay 1
}

TEST(SparseRadial, HunyuanPathDensity) {
  // No sink; 256 text tokens (2 blocks) dense rows and columns after 30 x 3840 video tokens.
  RadialRule r;
  r.decay = 0.95;
  r.sink = false;
  const std::vector<char> g = radial_block_grid(30, 3840, r);
  const int nb = 900, all = 902;
  double on = 0;
  for (int a = 0; a < all; ++a)
    for (int b = 0; b < all; ++b) on += (a >= nb || b >= nb) ? 1 : g[size_t(a) * nb + b];
  EXPECT_NEAR(on / (double(all) * all), 0.278, 0.005);
}

TEST(SparseRadial, RuleDetails) {
  RadialRule r;  // decay 0.2, block 128, sink
  const int64_t tpf = 3840;  // bitlen 12 -> 4096
  EXPECT_EQ(bit_length(3840), 12);
  EXPECT_EQ(bit_length(1), 1);
  EXPECT_EQ(bit_length(0), 0);
  EXPECT_GE(radial_band(5, 5, tpf, r), double(tpf));
  EXPECT_GE(radial_band(5, 4, tpf, r), double(tpf));
  EXPECT_GE(radial_band(9, 0, tpf, r), double(tpf));          // sink
  EXPECT_DOUBLE_EQ(radial_band(2, 4, tpf, r), 4096.0 / 4 * 0.2);  // dist 2: bitlen 2
  EXPECT_DOUBLE_EQ(radial_band(1, 9, tpf, r), 128.0);          // dist 8: 4096/16*0.2 < 128 -> floor
  // dist 32: L = 4096/64 = 64 < 128 -> kept only when dist % 2 == 0
  EXPECT_DOUBLE_EQ(radial_band(40, 8, tpf, r), 128.0);
  EXPECT_LT(radial_band(41, 8, tpf, r), 0.0);
  r.sink = false;
  EXPECT_LT(radial_band(33, 0, tpf, r), 0.0);
}

// Computed pairs grow as O(n log n) in the frame count (tokens per frame fixed): each doubling
// of the frames multiplies the pairs by a factor that falls towards 2, and pairs / (f log f)
// levels off, while a dense map would grow by 4 per doubling.
TEST(SparseRadial, PairsGrowAsNLogN) {
  RadialRule r;
  r.decay = 1.0;
  r.block = 32;  // the rule is scale-free: 256 tokens per frame at block 32 ~ 1024 at block 128
  const int64_t tpf = 256;
  std::vector<double> per_flogf, ratio;
  double prev = 0;
  for (int f = 32; f <= 1024; f *= 2) {
    const std::vector<char> g = radial_block_grid(f, tpf, r);
    double on = 0;
    for (char c : g) on += c;
    const double pairs = on * r.block * r.block;
    per_flogf.push_back(pairs / (double(f) * std::log2(double(f)) * double(tpf) * double(tpf)));
    if (prev > 0) ratio.push_back(pairs / prev);
    prev = pairs;
  }
  for (size_t i = 1; i < ratio.size(); ++i) EXPECT_LT(ratio[i], ratio[i - 1]);
  EXPECT_LT(ratio.back(), 2.35);  // n log n: 2 * 10 / 9 = 2.22; n^2: 4
  for (size_t i = 2; i < per_flogf.size(); ++i)  // increments shrink: bounded
    EXPECT_LT(per_flogf[i] - per_flogf[i - 1], per_flogf[i - 1] - per_flogf[i - 2]);
  EXPECT_LT(per_flogf.back() / per_flogf.front(), 1.6);
}

TEST(SparseRadial, BackendMapIsTheGridInFrameOrder) {
  auto b = make_backend("radial:block=32,decay=1");
  auto* sb = dynamic_cast<SparseBackend*>(b.get());
  ASSERT_NE(sb, nullptr);
  const TokenLayout l(12, 8, 8);  // 64 tokens per frame
  const auto maps = sb->preview(l);
  ASSERT_EQ(maps.size(), 1u);
  RadialRule r;
  r.decay = 1;
  r.block = 32;
  EXPECT_NEAR(maps[0].second.block_density(), grid_density(radial_block_grid(12, 64, r)), 1e-12);
  EXPECT_EQ(maps[0].second.partial_fraction(), 0.0);
}

TEST(SparseRadial, GridMaskInTileLayoutKeepsTheSamePairs) {
  RadialRule r;
  r.decay = 1;
  r.block = 32;
  const TokenLayout fm(10, 8, 8), tl = tile_layout(10, 8, 8, {1, 4, 4});
  const BlockMap a = compile_mask(RadialGridMask(fm, r), fm.tokens(), 32);
  const BlockMap b = compile_mask(RadialGridMask(tl, r), tl.tokens(), 32);
  EXPECT_NEAR(a.attended_density(), b.attended_density(), 1e-12);
}

TEST(SparseRadial, Radial3dWindowHalvesWithDistance) {
  Radial3dRule r;
  r.decay = 1.0;
  r.tile = {1, 2, 2};
  r.sink = false;
  const TokenLayout l = tile_layout(40, 16, 16, r.tile);  // 8 x 8 tiles per frame
  Radial3dMask m(l, r);
  auto keys_in_frame = [&](int t_q, int t_k) {
    const int64_t q = l.inverse()[size_t(l.frame_major_index(t_q, 7, 7))];
    int count = 0;
    for (int h = 0; h < 16; ++h)
      for (int w = 0; w < 16; ++w) count += m.allowed(q, l.inverse()[size_t(l.frame_major_index(t_k, h, w))]);
    return count;
  };
  EXPECT_EQ(keys_in_frame(0, 1), 256);  // dt 1: whole frame
  EXPECT_EQ(keys_in_frame(0, 2), 256);  // dt 2..3: 8 tiles per axis at decay 1
  EXPECT_EQ(keys_in_frame(0, 4), 64);   // dt 4..7: 4 x 4 tiles
  EXPECT_EQ(keys_in_frame(0, 8), 16);   // dt 8..15: 2 x 2 tiles
  EXPECT_EQ(keys_in_frame(0, 16), 4);   // dt 16..31: 1 tile, area 1
  EXPECT_EQ(keys_in_frame(0, 32), 4);   // dt 32: area 1/4 -> kept when dt % 4 == 0
  EXPECT_EQ(keys_in_frame(0, 33), 0);
  const TokenLayout small = tile_layout(12, 8, 8, r.tile);
  const BlockMap map = compile_mask(Radial3dMask(small, r), small.tokens(), 4);  // block = tile
  EXPECT_EQ(map.partial_fraction(), 0.0);
}
