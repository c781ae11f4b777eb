// STA's per-head window search: the iso-volume candidates, the least-error choice, the
// calibration file, the calibrator's errors and the searched backend's output against the
// reference kernel under each head's own window (fresh random inputs, block 32 over a grid that
// is not a multiple of it).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>

#include "attention/kernel/kernel.h"
#include "attention/mask/mask.h"
#include "attention/mask/window.h"
#include "attention/methods/sta.h"
#include "attention/spec.h"
#include "test_util.h"

using namespace ditgen;
using namespace ditgen::attn;

namespace {

// q, k, v of B*NH heads over a (tp, hp, wp) grid in the tile layout of `tile`.
struct Inputs {
  TokenLayout layout;
  int batch, heads, dh;
  std::vector<float> q, k, v;
  Inputs(int tp, int hp, int wp, TileShape tile, int batch_, int heads_, int dh_, std::mt19937_64& rng)
      : layout(tile_layout(tp, hp, wp, tile)), batch(batch_), heads(heads_), dh(dh_) {
    const size_t n = size_t(batch) * heads * layout.tokens() * dh;
    q = test::random_vector(n, rng), k = test::random_vector(n, rng), v = test::random_vector(n, rng);
  }
  AttentionInputs view() const { return {q.data(), k.data(), v.data(), batch, heads, layout.tokens(), dh, &layout}; }
};

// The exact output of every head under window `w` (all heads the same window).
std::vector<float> reference_under(const Inputs& x, const WindowRule& rule) {
  const BlockMap m = element_map(WindowMask(x.layout, rule), x.layout.tokens(), 32);
  std::vector<float> out(x.q.size());
  reference_attention(self_attention(x.q.data(), x.k.data(), x.v.data(), out.data(), x.batch * x.heads, x.layout.tokens(), x.dh, &m));
  return out;
}

std::vector<float> reference_dense(const Inputs& x) {
  const BlockMap m = BlockMap::dense(x.layout.tokens(), 32);
  std::vector<float> out(x.q.size());
  reference_attention(self_attention(x.q.data(), x.k.data(), x.v.data(), out.data(), x.batch * x.heads, x.layout.tokens(), x.dh, &m));
  return out;
}

}  // namespace

TEST(Sta, WindowsOfAVolumeAreEveryFactorisationThatFits) {
  const std::vector<TileShape> w = sta_windows(16, 4, 4, 4);
  ASSERT_EQ(w.size(), 6u);  // 1x4x4, 2x2x4, 2x4x2, 4x1x4, 4x2x2, 4x4x1
  for (const auto& s : w) {
    EXPECT_EQ(s.volume(), 16);
    EXPECT_LE(s.t, 4);
    EXPECT_LE(s.h, 4);
    EXPECT_LE(s.w, 4);
  }
  EXPECT_EQ(w.front().str(), "1x4x4");
  EXPECT_EQ(w.back().str(), "4x4x1");
  EXPECT_TRUE(sta_windows(5, 4, 4, 4).empty());  // 5 tiles fit no axis of 4
  EXPECT_EQ(sta_windows(1, 3, 2, 5).size(), 1u);
  EXPECT_EQ(sta_windows(3 * 2 * 5, 3, 2, 5).size(), 1u);  // the whole grid
}

TEST(Sta, SelectTakesTheLeastErrorAndTheEarlierOnATie) {
  std::mt19937_64 rng = test::fresh_rng();
  const int cells = 37, nw = 5;
  std::vector<double> e(size_t(cells) * nw);
  std::uniform_real_distribution<double> u(0, 1);
  for (double& x : e) x = u(rng);
  e[3 * nw + 1] = e[3 * nw + 4] = -1.0;  // a tie at the minimum
  const std::vector<int> c = sta_select(e, nw);
  ASSERT_EQ(c.size(), size_t(cells));
  for (int i = 0; i < cells; ++i)
    for (int w = 0; w < nw; ++w) EXPECT_LE(e[size_t(i) * nw + c[size_t(i)]], e[size_t(i) * nw + w]);
  EXPECT_EQ(c[3], 1);
  EXPECT_THROW(sta_select(std::vector<double>(7), 2), std::invalid_argument);
}

TEST(Sta, CalibratorErrorsAreTheWindowsRelativeErrorAndTheChoiceTheLeast) {
  std::mt19937_64 rng = test::fresh_rng();
  const TileShape tile{2, 3, 3};
  const Inputs x(5, 7, 6, tile, 2, 3, 8, rng);  // 3 x 3 x 2 tiles, partial tiles at the borders
  const std::vector<TileShape> windows{{1, 3, 2}, {3, 1, 2}, {3, 2, 1}};
  StaCalibrator cal(tile, true, 32, windows, 0);
  std::vector<float> out(x.q.size());
  const AttentionContext ctx{1, 2, 0, 1};  // step 1 of 2, the one layer
  cal.attend(x.view(), out.data(), ctx);
  const std::vector<float> dense = reference_dense(x);
  EXPECT_LT(test::max_abs_diff(out.data(), dense.data(), out.size()), 2e-5);  // the run stays dense
  const StaCalibration c = cal.result();
  ASSERT_EQ(c.steps, 2);
  ASSERT_EQ(c.heads, 3);
  ASSERT_EQ(c.windows.size(), windows.size());
  const size_t per_head = size_t(x.layout.tokens()) * x.dh;
  for (size_t w = 0; w < windows.size(); ++w) {
    const std::vector<float> s = reference_under(x, WindowRule{tile, windows[w], true});
    for (int h = 0; h < x.heads; ++h) {
      double want = 0;  // mean over the two batches of the head's relative L2 error
      for (int b = 0; b < x.batch; ++b) {
        const size_t o = size_t(b * x.heads + h) * per_head;
        want += std::sqrt(test::nmse(s.data() + o, dense.data() + o, per_head)) / x.batch;
      }
      const size_t cell = (size_t(1) * c.layers + 0) * c.heads + size_t(h);
      EXPECT_NEAR(c.error[cell * windows.size() + w], want, 1e-4 * want + 1e-6) << "window " << w << " head " << h;
    }
  }
  for (int h = 0; h < x.heads; ++h) {
    const size_t cell = size_t(c.layers + 0) * c.heads + size_t(h);
    for (size_t w = 0; w < windows.size(); ++w)
      EXPECT_LE(c.error[cell * windows.size() + size_t(c.window_of(1, 0, h))], c.error[cell * windows.size() + w]);
  }
}

TEST(Sta, SearchedBackendRunsEachHeadUnderItsWindowAndTheFileRoundTrips) {
  std::mt19937_64 rng = test::fresh_rng();
  const TileShape tile{2, 3, 3};
  StaCalibration c;
  c.tp = 5, c.hp = 7, c.wp = 6, c.block = 32, c.steps = 4, c.layers = 2, c.heads = 3, c.tile = tile, c.sink = false;
  c.windows = {{1, 3, 2}, {3, 1, 2}, {3, 2, 1}};
  const size_t cells = size_t(c.steps) * c.layers * c.heads;
  std::uniform_int_distribution<int> pick(0, 2);
  for (size_t i = 0; i < cells; ++i) c.choice.push_back(pick(rng));
  for (size_t i = 0; i < cells * c.windows.size(); ++i) c.error.push_back(0.01 * double(i));
  const std::string path = (std::filesystem::temp_directory_path() / ("sta_" + std::to_string(rng()) + ".json")).string();
  c.write(path);
  const StaCalibration r = StaCalibration::read(path);
  EXPECT_EQ(r.choice, c.choice);
  EXPECT_EQ(r.error, c.error);
  EXPECT_EQ(r.tile.str(), "2x3x3");
  EXPECT_FALSE(r.sink);

  auto b = make_backend("window:calib=" + path + ",block=32,dense_steps=0");
  EXPECT_EQ(b->spec().find("window="), std::string::npos);  // the file chose the windows
  EXPECT_NE(b->spec().find("tile=2x3x3"), std::string::npos);
  const TokenLayout l = b->layout(5, 7, 6);
  EXPECT_EQ(l.order(), tile_layout(5, 7, 6, tile).order());
  const Inputs x(5, 7, 6, tile, 2, 3, 8, rng);
  std::vector<float> out(x.q.size());
  // A run of 8 steps reads the calibrated step at the same point: step 5 of 8 -> 2 of 4.
  b->attend(x.view(), out.data(), AttentionContext{5, 8, 1, 2});
  const size_t per_head = size_t(x.layout.tokens()) * x.dh;
  for (int head = 0; head < x.batch * x.heads; ++head) {
    const int w = c.window_of(2, 1, head % c.heads);
    const std::vector<float> want = reference_under(x, WindowRule{tile, c.windows[size_t(w)], false});
    EXPECT_LT(test::max_abs_diff(out.data() + size_t(head) * per_head, want.data() + size_t(head) * per_head, per_head), 2e-5)
        << "head " << head << " window " << c.windows[size_t(w)].str();
  }
  // The spec may repeat what the file fixed, never change it.
  EXPECT_NO_THROW(make_backend("window:calib=" + path + ",tile=2x3x3,sink=0"));
  EXPECT_THROW(make_backend("window:calib=" + path + ",tile=4x4x4"), std::invalid_argument);
  EXPECT_THROW(make_backend("window:calib=" + path + ",sink=1"), std::invalid_argument);
  EXPECT_THROW(make_backend("window:calib=" + path + ",window=3x3x3"), std::invalid_argument);
  EXPECT_THROW(make_backend("window:calib=" + path + ",summary=1"), std::invalid_argument);
  std::filesystem::remove(path);
}

TEST(Sta, BadCalibrationFilesAreRefusedByName) {
  StaCalibration c;
  c.tp = 4, c.hp = 4, c.wp = 4, c.steps = 1, c.layers = 1, c.heads = 2, c.windows = {{1, 1, 1}, {2, 1, 1}};
  c.choice = {0, 1};
  c.error = {0, 0, 0, 0};
  const std::string path = (std::filesystem::temp_directory_path() / "sta_bad_test.json").string();
  auto refused = [&](const StaCalibration& bad, const std::string& says) {
    bad.write(path);
    try {
      StaCalibration::read(path);
      ADD_FAILURE() << "accepted: " << says;
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find(says), std::string::npos) << e.what();
    }
  };
  StaCalibration b = c;
  b.choice = {0, 2};  // no third window
  refused(b, "choice = 2");
  b = c;
  b.choice = {0};
  refused(b, "choice has 1 entries, expected 2");
  b = c;
  b.error.pop_back();
  refused(b, "error has 3 entries, expected 4");
  b = c;
  b.windows.clear();
  b.choice.clear();
  b.error.clear();
  refused(b, "no candidate windows");
  EXPECT_THROW(StaCalibration::read(path + ".absent"), std::runtime_error);
  std::filesystem::remove(path);
}
