// Flow-matching schedule (docs/model.md section 8): shift formula, endpoints, size, monotonicity.
#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>

#include "sampler/sampler.h"

namespace ds = ditgen::sampler;

TEST(SamplerSchedule, ShiftFormula) {
  EXPECT_DOUBLE_EQ(ds::shift_sigma(0.5, 3.0), 0.75);  // 3*0.5 / (1 + 2*0.5)
  EXPECT_DOUBLE_EQ(ds::shift_sigma(0.25, 5.0), 1.25 / 2.0);
  for (double s : {0.5, 1.0, 3.0, 5.0, 12.0}) {
    EXPECT_EQ(ds::shift_sigma(0.0, s), 0.0) << "shift " << s;
    EXPECT_DOUBLE_EQ(ds::shift_sigma(1.0, s), 1.0) << "shift " << s;
  }
  for (double sg : {0.1, 0.37, 0.9}) EXPECT_DOUBLE_EQ(ds::shift_sigma(sg, 1.0), sg);
  // shift > 1 moves sigma up (more time at high noise), shift < 1 down.
  EXPECT_GT(ds::shift_sigma(0.3, 5.0), 0.3);
  EXPECT_LT(ds::shift_sigma(0.3, 0.5), 0.3);
  // The inverse shift: shift(shift(x, s), 1/s) = x.
  EXPECT_NEAR(ds::shift_sigma(ds::shift_sigma(0.42, 7.0), 1.0 / 7.0), 0.42, 1e-15);
}

TEST(SamplerSchedule, ValuesSizeEndpointsMonotone) {
  // shift 1: sigma_i = 0.999 (1 - i/4).
  const auto s1 = ds::flow_sigmas(4, 1.0);
  ASSERT_EQ(s1.size(), 5u);
  const double want[5] = {0.999, 0.74925, 0.4995, 0.24975, 0.0};
  for (int i = 0; i < 5; ++i) EXPECT_NEAR(s1[i], want[i], 1e-15) << "i = " << i;

  for (int steps : {1, 2, 7, 20, 50, 200}) {
    for (double shift : {1.0, 3.0, 5.0, 8.0}) {
      const auto s = ds::flow_sigmas(steps, shift);
      ASSERT_EQ(s.size(), static_cast<size_t>(steps) + 1);
      EXPECT_DOUBLE_EQ(s.front(), ds::shift_sigma(0.999, shift));
      EXPECT_EQ(s.back(), 0.0);
      for (int i = 0; i < steps; ++i) {
        EXPECT_DOUBLE_EQ(s[i], ds::shift_sigma(0.999 * (1.0 - double(i) / steps), shift))
            << "steps " << steps << " shift " << shift << " i " << i;
        EXPECT_GT(s[i], s[i + 1]) << "steps " << steps << " shift " << shift << " i " << i;
        EXPECT_LT(s[i], 1.0);
      }
    }
  }
}

TEST(SamplerSchedule, MatchesWanTimesteps) {
  // Wan2.1 fact sheet, section 7: N = 50, shift 5 gives sigma_0 = 0.99980 and the truncated
  // timesteps 999, 995, 991, 987, 982, 978, ..., 356, 302, 241, 172, 92.
  const auto s = ds::flow_sigmas(50, 5.0);
  EXPECT_NEAR(s[0], 0.99980, 5e-6);
  const int head[6] = {999, 995, 991, 987, 982, 978};
  for (int i = 0; i < 6; ++i) EXPECT_EQ(static_cast<int>(ds::sigma_to_timestep(s[i])), head[i]) << "i " << i;
  const int tail[5] = {356, 302, 241, 172, 92};
  for (int i = 0; i < 5; ++i) EXPECT_EQ(static_cast<int>(ds::sigma_to_timestep(s[45 + i])), tail[i]) << "i " << 45 + i;
}

TEST(SamplerSchedule, RejectsBadArguments) {
  EXPECT_THROW(ds::flow_sigmas(0, 5.0), std::invalid_argument);
  EXPECT_THROW(ds::flow_sigmas(-3, 5.0), std::invalid_argument);
  EXPECT_THROW(ds::flow_sigmas(10, 0.0), std::invalid_argument);
  EXPECT_THROW(ds::flow_sigmas(10, -1.0), std::invalid_argument);
  EXPECT_THROW(ds::flow_sigmas(10, NAN), std::invalid_argument);
  EXPECT_THROW(ds::shift_sigma(0.5, 0.0), std::invalid_argument);
}
