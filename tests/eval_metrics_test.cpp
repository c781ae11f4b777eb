// PSNR and SSIM against hand-computed values and an independent implementation.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "eval/metrics.h"

namespace ditgen::eval {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// The test images of the SSIM references below: a(y, x, k) = (37x + 11y + 50k) mod 256 and
// b = clamp(floor(3a/4) + 20 + 3(((7x + 3y + 5k) mod 41) - 20), 0, 255): a new mean, a new
// contrast and added structure (all integers, so float32 holds them exactly).
std::vector<float> image_a(int h, int w, int c) {
  std::vector<float> v(size_t(h) * w * c);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int k = 0; k < c; ++k) v[(size_t(y) * w + x) * c + k] = float((37 * x + 11 * y + 50 * k) % 256);
  return v;
}
std::vector<float> image_b(int h, int w, int c) {
  std::vector<float> v(size_t(h) * w * c);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int k = 0; k < c; ++k) {
        const size_t i = (size_t(y) * w + x) * c + k;
        const int ai = (37 * x + 11 * y + 50 * k) % 256;
        v[i] = float(std::clamp(3 * ai / 4 + 20 + 3 * ((7 * x + 3 * y + 5 * k) % 41 - 20), 0, 255));
      }
  return v;
}

TEST(Psnr, HandComputed) {
  // MSE = (1 + 1 + 4 + 0) / 4 = 1.5: 10·log10(255² / 1.5) = 46.369891018 dB
  const float a[] = {0, 0, 0, 0}, b[] = {1, -1, 2, 0};
  EXPECT_NEAR(psnr(a, b, 4, 255.0), 46.369891018122296, 1e-9);
  // MSE = 1: 20·log10(255) = 48.130803609 dB
  const float c[] = {10, 20, 30}, d[] = {11, 19, 31};
  EXPECT_NEAR(psnr(c, d, 3, 255.0), 48.1308036086791, 1e-9);
  // Float range 2, MSE = 0.01: 10·log10(4 / 0.01) = 26.020599913 dB
  const float e[] = {-1.0f, 0.5f}, f[] = {-0.9f, 0.4f};
  EXPECT_NEAR(psnr(e, f, 2, 2.0), 26.020599913279625, 1e-5);
  EXPECT_DOUBLE_EQ(mse(a, b, 4), 1.5);
  EXPECT_NEAR(psnr_from_mse(1.5, 255.0), 46.369891018122296, 1e-9);
}

TEST(Psnr, IdenticalIsInfinite) {
  const std::vector<float> a = image_a(8, 8, 1);
  EXPECT_EQ(psnr(a.data(), a.data(), int64_t(a.size()), 255.0), kInf);
  EXPECT_EQ(psnr_from_mse(0.0, 2.0), kInf);
}

TEST(Psnr, BadArguments) {
  const float a[] = {0};
  EXPECT_THROW(psnr(a, a, 0, 255.0), std::invalid_argument);
  EXPECT_THROW(psnr(a, a, 1, 0.0), std::invalid_argument);
  EXPECT_THROW(ssim_frame(a, a, 0, 1, 1, 255.0), std::invalid_argument);
  EXPECT_THROW(ssim_frame(a, a, 1, 1, 1, -1.0), std::invalid_argument);
}

TEST(Ssim, IdenticalIsOne) {
  for (int c : {1, 3}) {
    const std::vector<float> a = image_a(16, 16, c);
    EXPECT_EQ(ssim_frame(a.data(), a.data(), 16, 16, c, 255.0), 1.0);
    std::vector<double> g(256);
    for (int i = 0; i < 256; ++i) g[i] = a[size_t(i) * c];
    EXPECT_NEAR(ssim_gray(g.data(), g.data(), 16, 16, 255.0), 1.0, 1e-12);
  }
}

// Reference values computed with numpy (float64) in two independent ways that agree to 12
// digits: an explicit 11×11 Gaussian window (σ 1.5, normalised) at every valid position,
// and scikit-image's method (scipy.ndimage.gaussian_filter σ 1.5, truncate 3.5, reflect
// mode, 5-pixel border cropped before the mean).
TEST(Ssim, MatchesIndependentImplementation) {
  struct Case {
    int h, w, c;
    double range, want;
  };
  for (const Case& k : {Case{16, 16, 1, 255.0, 0.694625139252}, Case{12, 20, 1, 255.0, 0.726336570184},
                        Case{16, 16, 3, 255.0, 0.627107074214},  // RGB read as BT.601 luma
                        Case{8, 9, 1, 255.0, 0.745106422634}}) {  // smaller than the window: 7×7
    const auto a = image_a(k.h, k.w, k.c), b = image_b(k.h, k.w, k.c);
    EXPECT_NEAR(ssim_frame(a.data(), b.data(), k.h, k.w, k.c, k.range), k.want, 1e-9) << k.h << "x" << k.w << "x" << k.c;
    EXPECT_NEAR(ssim_frame(b.data(), a.data(), k.h, k.w, k.c, k.range), k.want, 1e-9) << "symmetric";
  }
  // The same images mapped to the engine's float scale v/127.5 - 1, data range 2.
  auto a = image_a(16, 16, 1), b = image_b(16, 16, 1);
  for (auto* v : {&a, &b})
    for (auto& x : *v) x = x / 127.5f - 1.0f;
  EXPECT_NEAR(ssim_frame(a.data(), b.data(), 16, 16, 1, 2.0), 0.313726373501, 1e-6);
}

TEST(Ssim, DecreasesWithNoise) {
  const int h = 48, w = 48;
  std::vector<float> clean(size_t(h) * w);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      clean[size_t(y) * w + x] = float(128 + 100 * std::sin(x * 0.3) * std::cos(y * 0.2));
  std::mt19937 rng(7);
  std::normal_distribution<float> n01(0.0f, 1.0f);
  std::vector<float> unit(clean.size());
  for (auto& v : unit) v = n01(rng);
  double prev_ssim = 1.0, prev_psnr = kInf;
  for (float sigma : {2.0f, 5.0f, 10.0f, 20.0f, 40.0f}) {
    std::vector<float> noisy(clean.size());
    for (size_t i = 0; i < clean.size(); ++i) noisy[i] = clean[i] + sigma * unit[i];
    const double s = ssim_frame(clean.data(), noisy.data(), h, w, 1, 255.0);
    const double p = psnr(clean.data(), noisy.data(), int64_t(clean.size()), 255.0);
    EXPECT_LT(s, prev_ssim) << "sigma " << sigma;
    EXPECT_LT(p, prev_psnr) << "sigma " << sigma;
    EXPECT_GT(s, 0.0);
    prev_ssim = s;
    prev_psnr = p;
  }
  EXPECT_LT(prev_ssim, 0.6);
}

TEST(Video, ToU8Rounding) {
  EXPECT_EQ(to_u8_value(-1.0f), 0.0f);
  EXPECT_EQ(to_u8_value(1.0f), 255.0f);
  EXPECT_EQ(to_u8_value(0.0f), 128.0f);   // 127.5 rounds half up
  EXPECT_EQ(to_u8_value(-3.0f), 0.0f);    // clamped
  EXPECT_EQ(to_u8_value(7.0f), 255.0f);
  EXPECT_EQ(to_u8_value(-0.5f), 64.0f);   // 63.75 -> 64
}

TEST(Video, PerFrameAndMean) {
  const int t = 3, h = 16, w = 16, c = 1;
  const size_t fs = size_t(h) * w * c;
  // Frame 0 identical; frame 1 differs by 2/255 everywhere in float (exactly 1 or 2 levels in
  // 8 bits); frame 2 is image_b against image_a.
  std::vector<float> ref(t * fs), test(t * fs);
  const auto a = image_a(h, w, c), b = image_b(h, w, c);
  for (size_t i = 0; i < fs; ++i) {
    ref[i] = test[i] = a[i] / 127.5f - 1.0f;
    ref[fs + i] = -0.5f;
    test[fs + i] = -0.5f + 2.0f / 255.0f;
    ref[2 * fs + i] = a[i] / 127.5f - 1.0f;
    test[2 * fs + i] = b[i] / 127.5f - 1.0f;
  }
  const VideoQuality q = compare_videos(ref.data(), test.data(), t, h, w, c);
  ASSERT_EQ(q.frames, 3);
  ASSERT_EQ(q.per_frame.size(), 3u);
  EXPECT_EQ(q.per_frame[0].psnr_u8_db, kInf);
  EXPECT_EQ(q.per_frame[0].psnr_float_db, kInf);
  EXPECT_EQ(q.per_frame[0].ssim, 1.0);
  // Frame 1 in 8 bits: -0.5 -> 64 and -0.5 + 2/255 -> 65.0 -> 65: MSE 1, 48.13 dB.
  EXPECT_NEAR(q.per_frame[1].psnr_u8_db, 48.1308036086791, 1e-6);
  // Float: difference 2/255 on range 2 is one level of 255: 48.13 dB as well.
  EXPECT_NEAR(q.per_frame[1].psnr_float_db, 48.1308036086791, 1e-3);
  // Frame 2: image_a and image_b are integers, so the 8-bit round trip is exact.
  EXPECT_NEAR(q.per_frame[2].ssim, 0.694625139252, 1e-6);
  EXPECT_NEAR(q.per_frame[2].psnr_u8_db, psnr(a.data(), b.data(), int64_t(fs), 255.0), 1e-6);
  // A mean over frames that include an identical frame is infinite; the pooled PSNR is not.
  EXPECT_EQ(q.psnr_db, kInf);
  EXPECT_TRUE(std::isfinite(q.psnr_db_global));
  EXPECT_NEAR(q.ssim, (1.0 + q.per_frame[1].ssim + q.per_frame[2].ssim) / 3.0, 1e-12);
  // Without the identical frame the mean is the mean of the per-frame values.
  const VideoQuality q2 = compare_videos(ref.data() + fs, test.data() + fs, 2, h, w, c);
  EXPECT_NEAR(q2.psnr_db, (q.per_frame[1].psnr_u8_db + q.per_frame[2].psnr_u8_db) / 2.0, 1e-9);
  EXPECT_NEAR(q2.psnr_float_db, (q.per_frame[1].psnr_float_db + q.per_frame[2].psnr_float_db) / 2.0, 1e-9);
  // Identical videos.
  const VideoQuality same = compare_videos(ref.data(), ref.data(), t, h, w, c);
  EXPECT_EQ(same.psnr_db, kInf);
  EXPECT_EQ(same.psnr_float_db_global, kInf);
  EXPECT_EQ(same.ssim, 1.0);
  EXPECT_THROW(compare_videos(ref.data(), test.data(), 0, h, w, c), std::invalid_argument);
}

TEST(Video, PerFrameHelpers) {
  const int h = 12, w = 20, c = 1;
  const auto a = image_a(h, w, c), b = image_b(h, w, c);
  std::vector<float> va(a), vb(b);
  va.insert(va.end(), a.begin(), a.end());
  vb.insert(vb.end(), a.begin(), a.end());
  const auto s = ssim_per_frame(va.data(), vb.data(), 2, h, w, c, 255.0);
  ASSERT_EQ(s.size(), 2u);
  EXPECT_NEAR(s[0], 0.726336570184, 1e-9);
  EXPECT_EQ(s[1], 1.0);
  const auto p = psnr_per_frame(va.data(), vb.data(), 2, h, w, c, 255.0);
  EXPECT_TRUE(std::isfinite(p[0]));
  EXPECT_EQ(p[1], kInf);
  EXPECT_NEAR(mean_over_frames(s), (s[0] + 1.0) / 2.0, 1e-15);
  EXPECT_TRUE(std::isnan(mean_over_frames({})));
}

}  // namespace
}  // namespace ditgen::eval
