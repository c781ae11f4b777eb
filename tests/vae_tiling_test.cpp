// The VAE's spatial tiling (vae/tiling.h): tiles cover the latent with the overlap asked for,
// blend weights make a partition of unity wherever two tiles share a band, and bad sizes are
// refused by name. The tiled decode itself is tested against the whole-frame one in wan_vae_test.
#include <gtest/gtest.h>

#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "pipeline/options.h"
#include "vae/tiling.h"

namespace ditgen {
namespace {

using vae::TileSpan;
using vae::VaeTiling;

TEST(VaeTiling, OneTileWhereTheLatentFits) {
  const std::vector<TileSpan> s = vae::tile_spans(30, VaeTiling{32, 8});
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].start, 0);
  EXPECT_EQ(s[0].length, 30);
  for (int x = 0; x < 240; ++x) EXPECT_EQ(vae::tile_weight(s[0], x, 8), 1.0f);
}

TEST(VaeTiling, SpansCoverWithTheOverlapAskedFor) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 500; ++trial) {
    const int size = 1 + int(rng() % 40), overlap = int(rng() % size), length = 1 + int(rng() % 200);
    const std::vector<TileSpan> s = vae::tile_spans(length, VaeTiling{size, overlap});
    ASSERT_FALSE(s.empty());
    EXPECT_EQ(s.front().start, 0);
    EXPECT_EQ(s.back().start + s.back().length, length);
    for (size_t i = 0; i < s.size(); ++i) {
      EXPECT_EQ(s[i].length, std::min(size, length));
      if (i == 0) continue;
      const int shared = s[i - 1].start + s[i - 1].length - s[i].start;
      EXPECT_GT(s[i].start, s[i - 1].start);  // progress: no tile twice
      // Every pair shares the overlap asked for, the last pair at least that (it ends at `length`).
      if (i + 1 < s.size()) {
        EXPECT_EQ(shared, overlap) << size << " " << overlap << " " << length;
      }
      EXPECT_GE(shared, overlap);
      EXPECT_EQ(s[i].shared_before, shared);
      EXPECT_EQ(s[i - 1].shared_after, shared);
    }
  }
}

TEST(VaeTiling, WeightsSumToOneAcrossEverySharedBand) {
  std::mt19937 rng(11);
  int partitions = 0;
  for (int trial = 0; trial < 200; ++trial) {
    const int size = 2 + int(rng() % 20), overlap = int(rng() % (size / 2 + 1)), length = 1 + int(rng() % 80);
    const std::vector<TileSpan> s = vae::tile_spans(length, VaeTiling{size, overlap});
    std::vector<float> sum(size_t(length) * 8, 0.0f);
    bool bands_apart = true;  // no tile's two bands meet (the last pair can share more than `overlap`)
    for (const TileSpan& t : s) {
      bands_apart = bands_apart && t.shared_before + t.shared_after <= t.length;
      for (int x = 0; x < t.length * 8; ++x) {
        const float w = vae::tile_weight(t, x, 8);
        EXPECT_GT(w, 0.0f);
        EXPECT_LE(w, 1.0f);
        sum[size_t(t.start * 8 + x)] += w;
      }
    }
    partitions += bands_apart && s.size() > 1;
    // Where the bands stay apart, a partition of unity; elsewhere the decode divides by the sum.
    for (int x = 0; x < length * 8; ++x) {
      if (bands_apart)
        EXPECT_NEAR(sum[size_t(x)], 1.0f, 1e-6f) << size << " " << overlap << " " << x;
      else
        EXPECT_GE(sum[size_t(x)], 0.5f) << size << " " << overlap << " " << x;
    }
  }
  EXPECT_GT(partitions, 50);
}

TEST(VaeTiling, RefusesBadSizesByName) {
  EXPECT_THROW(VaeTiling({0, 0}).validate(), std::invalid_argument);
  EXPECT_THROW(VaeTiling({4, 4}).validate(), std::invalid_argument);
  EXPECT_THROW(VaeTiling({4, -1}).validate(), std::invalid_argument);
  EXPECT_FALSE(pipeline::vae_tiling_from_pixels(std::nullopt, std::nullopt).on());
  const VaeTiling t = pipeline::vae_tiling_from_pixels(256, std::nullopt);
  EXPECT_EQ(t.size, 32);
  EXPECT_EQ(t.overlap, 8);
  EXPECT_EQ(pipeline::vae_tiling_from_pixels(256, 0).overlap, 0);
  const auto refused = [](std::optional<int> tile, std::optional<int> overlap, const std::string& needle) {
    try {
      pipeline::vae_tiling_from_pixels(tile, overlap);
      ADD_FAILURE() << needle;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  refused(100, std::nullopt, "--vae-tile 100");
  refused(0, std::nullopt, "--vae-tile 0");
  refused(-8, std::nullopt, "--vae-tile -8");
  refused(64, std::nullopt, "--vae-tile-overlap 64 (the default)");
  refused(256, 12, "--vae-tile-overlap 12");
  refused(256, 256, "--vae-tile-overlap 256");
  refused(std::nullopt, 64, "--vae-tile-overlap needs --vae-tile");
}

}  // namespace
}  // namespace ditgen
