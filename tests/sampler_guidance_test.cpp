// Classifier-free guidance algebra: v = v_u + g (v_c - v_u).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "sampler/sampler.h"

namespace ds = ditgen::sampler;

namespace {
std::vector<float> noise(uint64_t seed, int64_t n) {
  std::vector<float> v(n);
  ds::gaussian_noise(seed, v.data(), n);
  return v;
}
bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}
}  // namespace

TEST(SamplerGuidance, ScaleOneIsCondScaleZeroIsUncond) {
  const int64_t n = 1000;
  const auto c = noise(1, n), u = noise(2, n);
  std::vector<float> out(n);
  ds::Guidance g1(1.0);
  EXPECT_FALSE(g1.active());
  EXPECT_EQ(g1.batch(), 1);
  g1.combine(c.data(), u.data(), out.data(), n);
  EXPECT_TRUE(same_bits(out, c));
  ds::Guidance g0(0.0);
  EXPECT_TRUE(g0.active());
  EXPECT_EQ(g0.batch(), 2);
  g0.combine(c.data(), u.data(), out.data(), n);
  EXPECT_TRUE(same_bits(out, u));
  EXPECT_EQ(ds::Guidance(4.5).scale(), 4.5);
}

TEST(SamplerGuidance, FormulaAndLinearity) {
  const int64_t n = 100000;  // above the parallel threshold
  const auto c1 = noise(3, n), u1 = noise(4, n), c2 = noise(5, n), u2 = noise(6, n);
  for (double g : {-1.0, 0.5, 4.0, 7.5}) {
    ds::Guidance guide(g);
    std::vector<float> o1(n), o2(n), o12(n), c12(n), u12(n);
    guide.combine(c1.data(), u1.data(), o1.data(), n);
    guide.combine(c2.data(), u2.data(), o2.data(), n);
    for (int64_t i = 0; i < n; ++i) {
      c12[i] = c1[i] + c2[i];
      u12[i] = u1[i] + u2[i];
    }
    guide.combine(c12.data(), u12.data(), o12.data(), n);
    for (int64_t i = 0; i < n; ++i) {
      const double want = u1[i] + g * (double(c1[i]) - u1[i]);
      ASSERT_NEAR(o1[i], want, 1e-6 * (1 + std::fabs(want))) << "g " << g << " i " << i;
      // Linear in the (cond, uncond) pair.
      // (float rounding of the summed inputs, amplified by |g| and |1 - g|, bounds the gap)
      const double scale = 1 + std::fabs(c1[i]) + std::fabs(c2[i]) + std::fabs(u1[i]) + std::fabs(u2[i]);
      ASSERT_NEAR(o12[i], double(o1[i]) + o2[i], 2e-7 * (1 + 2 * std::fabs(g)) * scale) << "g " << g << " i " << i;
    }
  }
  // Affine in the scale: the midpoint scale gives the midpoint velocity.
  std::vector<float> a(n), b(n), mid(n);
  ds::Guidance(2.0).combine(c1.data(), u1.data(), a.data(), n);
  ds::Guidance(6.0).combine(c1.data(), u1.data(), b.data(), n);
  ds::Guidance(4.0).combine(c1.data(), u1.data(), mid.data(), n);
  for (int64_t i = 0; i < n; ++i) ASSERT_NEAR(mid[i], 0.5 * (double(a[i]) + b[i]), 2e-6 * (1 + std::fabs(mid[i]))) << i;
  // Cond equal to uncond: guidance changes nothing, at any scale.
  ds::Guidance(9.0).combine(c1.data(), c1.data(), a.data(), n);
  EXPECT_TRUE(same_bits(a, c1));
}

TEST(SamplerGuidance, BatchedLayoutAndAliasing) {
  const int64_t n = 777;
  const auto c = noise(7, n), u = noise(8, n);
  std::vector<float> batch(c);
  batch.insert(batch.end(), u.begin(), u.end());  // batch 0 = cond, batch 1 = uncond
  ds::Guidance g(5.0);
  std::vector<float> want(n), got(n);
  g.combine(c.data(), u.data(), want.data(), n);
  g.combine_batched(batch.data(), got.data(), n);
  EXPECT_TRUE(same_bits(got, want));
  // In place into the batch buffer (out aliases the conditional block).
  g.combine_batched(batch.data(), batch.data(), n);
  EXPECT_TRUE(same_bits(std::vector<float>(batch.begin(), batch.begin() + n), want));
  // In place into the conditional input.
  std::vector<float> cc(c);
  g.combine(cc.data(), u.data(), cc.data(), n);
  EXPECT_TRUE(same_bits(cc, want));
  // Inactive guidance: the batch holds only the conditional block.
  ds::Guidance(1.0).combine_batched(c.data(), got.data(), n);
  EXPECT_TRUE(same_bits(got, c));
}

TEST(SamplerGuidance, RejectsNonFiniteScale) {
  EXPECT_THROW((void)ds::Guidance(std::nan("")), std::invalid_argument);
  EXPECT_THROW((void)ds::Guidance(HUGE_VAL), std::invalid_argument);
}
