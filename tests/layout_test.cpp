// TokenLayout: coordinates, bijection checks and the permute/unpermute round trip.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>

#include "core/layout.h"
#include "tests/test_util.h"

namespace ditgen {
namespace {

TEST(Layout, FrameMajorCoordinates) {
  TokenLayout l(3, 4, 5);
  ASSERT_EQ(l.tokens(), 60);
  EXPECT_TRUE(l.is_identity());
  for (int t = 0; t < 3; ++t)
    for (int h = 0; h < 4; ++h)
      for (int w = 0; w < 5; ++w) {
        const int64_t n = l.frame_major_index(t, h, w);
        EXPECT_EQ(n, (t * 4 + h) * 5 + w);
        const Coord c = l.coord(n);
        EXPECT_EQ(c.t, t);
        EXPECT_EQ(c.h, h);
        EXPECT_EQ(c.w, w);
      }
}

TEST(Layout, PermuteUnpermuteRoundTrip) {
  auto rng = test::fresh_rng();
  for (auto dims : {std::array<int, 3>{1, 1, 1}, std::array<int, 3>{1, 16, 16}, std::array<int, 3>{5, 3, 7}}) {
    TokenLayout base(dims[0], dims[1], dims[2]);
    std::vector<int32_t> order(size_t(base.tokens()));
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), rng);
    TokenLayout l(dims[0], dims[1], dims[2], order, "shuffled");
    const int64_t width = 3;
    auto src = test::random_vector(size_t(l.tokens() * width), rng);
    std::vector<float> mid(src.size()), back(src.size());
    l.permute(src.data(), mid.data(), width);
    l.unpermute(mid.data(), back.data(), width);
    EXPECT_EQ(src, back);
    for (int64_t i = 0; i < l.tokens(); ++i) {
      // Position i holds the token whose coordinates the layout reports.
      const Coord c = l.coord(i);
      const int64_t n = l.frame_major_index(c.t, c.h, c.w);
      EXPECT_EQ(mid[size_t(i * width)], src[size_t(n * width)]);
      EXPECT_EQ(l.inverse()[size_t(n)], i);
    }
  }
}

TEST(Layout, RejectsNonPermutations) {
  EXPECT_THROW(TokenLayout(2, 1, 1, {0, 0}, "dup"), std::invalid_argument);
  EXPECT_THROW(TokenLayout(2, 1, 1, {0, 2}, "range"), std::invalid_argument);
  EXPECT_THROW(TokenLayout(2, 1, 1, {0}, "short"), std::invalid_argument);
  EXPECT_THROW(TokenLayout(0, 1, 1), std::invalid_argument);
  try {
    TokenLayout(2, 1, 1, {1, 1}, "dup");
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("not a permutation"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace ditgen
