// Token reorderings: every layout is a bijection and round-trips through permute/unpermute.
#include <gtest/gtest.h>

#include <numeric>
#include <set>
#include <stdexcept>

#include "attention/mask/reorder.h"

using namespace ditgen;
using namespace ditgen::attn;

namespace {

void expect_round_trip(const TokenLayout& l) {
  const int64_t n = l.tokens();
  const int64_t width = 3;
  std::vector<float> src(size_t(n * width)), mid(src.size()), back(src.size());
  std::iota(src.begin(), src.end(), 0.0f);
  l.permute(src.data(), mid.data(), width);
  l.unpermute(mid.data(), back.data(), width);
  EXPECT_EQ(src, back) << l.name();
  // Position i holds the token whose frame-major coordinates the layout reports.
  for (int64_t i = 0; i < n; ++i) {
    const Coord c = l.coord(i);
    const int64_t fm = l.frame_major_index(c.t, c.h, c.w);
    ASSERT_EQ(mid[size_t(i * width)], float(fm * width)) << l.name() << " position " << i;
    ASSERT_EQ(l.inverse()[size_t(l.order()[size_t(i)])], i);
  }
}

}  // namespace

TEST(SparseReorder, EveryLayoutRoundTrips) {
  for (auto [tp, hp, wp] : {std::tuple{3, 5, 7}, std::tuple{4, 8, 8}, std::tuple{1, 1, 1}, std::tuple{6, 4, 10}}) {
    for (const std::string& name : layout_names()) {
      for (const TileShape& tile : {TileShape{2, 4, 4}, TileShape{1, 3, 3}, TileShape{4, 4, 4}}) {
        const TokenLayout l = make_layout(name, tp, hp, wp, tile);
        EXPECT_EQ(l.tokens(), int64_t(tp) * hp * wp);
        expect_round_trip(l);
      }
    }
  }
}

TEST(SparseReorder, FrameIsIdentity) { EXPECT_TRUE(make_layout("frame", 3, 4, 5).is_identity()); }

TEST(SparseReorder, TilesAreContiguous) {
  const TileShape tile{2, 4, 4};
  const TokenLayout l = tile_layout(5, 8, 6, tile);  // 5 and 6 do not divide: smaller border tiles
  std::set<std::tuple<int, int, int>> done;
  std::tuple<int, int, int> current{-1, -1, -1};
  for (int64_t i = 0; i < l.tokens(); ++i) {
    const Coord c = l.coord(i);
    const std::tuple<int, int, int> t{c.t / tile.t, c.h / tile.h, c.w / tile.w};
    if (t != current) {
      EXPECT_EQ(done.count(t), 0u) << "tile revisited at position " << i;
      done.insert(t);
      current = t;
    }
  }
  EXPECT_EQ(done.size(), size_t(3 * 2 * 2));
  // First tile: frame-major inside the tile.
  EXPECT_EQ(l.order()[0], 0);
  EXPECT_EQ(l.order()[1], 1);
  EXPECT_EQ(l.order()[4], 6);  // next row of the tile (w = 0, h = 1)
}

TEST(SparseReorder, TransposeIsSvgIndexMap) {
  const int tp = 3, hp = 2, wp = 5;
  const int64_t f = hp * wp;
  const TokenLayout l = transpose_layout(tp, hp, wp);
  for (int64_t p = 0; p < f; ++p)
    for (int t = 0; t < tp; ++t) EXPECT_EQ(l.order()[size_t(p * tp + t)], t * f + p);
  EXPECT_EQ(l.order(), axis_order_layout(tp, hp, wp, "hwt").order());
}

TEST(SparseReorder, AxisOrdersAreDistinctBijections) {
  std::set<std::vector<int32_t>> seen;
  for (const std::string& a : axis_orders()) {
    const TokenLayout l = axis_order_layout(2, 3, 4, a);
    seen.insert(l.order());
    // The last axis varies fastest.
    const Coord c0 = l.coord(0), c1 = l.coord(1);
    const char fastest = a[2];
    const int step = fastest == 't' ? c1.t - c0.t : fastest == 'h' ? c1.h - c0.h : c1.w - c0.w;
    EXPECT_EQ(step, 1) << a;
  }
  EXPECT_EQ(seen.size(), 6u);
  EXPECT_TRUE(axis_order_layout(2, 3, 4, "thw").is_identity());
}

TEST(SparseReorder, RelativeOrderComposes) {
  const TokenLayout a = tile_layout(4, 4, 4, {2, 2, 2}), b = transpose_layout(4, 4, 4);
  const std::vector<int32_t> r = relative_order(a, b);
  for (size_t i = 0; i < r.size(); ++i) EXPECT_EQ(b.order()[size_t(r[i])], a.order()[i]);
}

TEST(SparseReorder, BadNamesAndTilesAreRejected) {
  EXPECT_THROW(make_layout("spiral", 2, 2, 2), std::invalid_argument);
  try {
    make_layout("spiral", 2, 2, 2);
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("spiral"), std::string::npos);
  }
  EXPECT_THROW(axis_order_layout(2, 2, 2, "tth"), std::invalid_argument);
  EXPECT_THROW(parse_tile("2x0x2"), std::invalid_argument);
  EXPECT_THROW(parse_tile("2x2"), std::invalid_argument);
  EXPECT_THROW(parse_tile("ax2x2"), std::invalid_argument);
  EXPECT_EQ(parse_tile("3").str(), "3x3x3");
  EXPECT_EQ(parse_tile("1x8x8").str(), "1x8x8");
}
