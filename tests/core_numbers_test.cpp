// core/numbers.h: the one whole-text number rule behind every flag and spec value.
#include "core/numbers.h"

#include <gtest/gtest.h>

#include <climits>
#include <cmath>
#include <random>
#include <sstream>

namespace ditgen {
namespace {

TEST(Numbers, FiniteAcceptsPlainDecimalsOnly) {
  EXPECT_EQ(parse_finite("0.25"), 0.25);
  EXPECT_EQ(parse_finite("-3"), -3.0);
  EXPECT_EQ(parse_finite("+2"), 2.0);
  EXPECT_EQ(parse_finite("1e-3"), 1e-3);
  EXPECT_EQ(parse_finite(".5"), 0.5);
  for (const char* bad : {"", " 1", "1 ", "1x", "inf", "-inf", "nan", "0x10", "1e999", "-", ".", "e3", "1e", "1,5", "--1"})
    EXPECT_FALSE(parse_finite(bad).has_value()) << "'" << bad << "'";
}

TEST(Numbers, IntAcceptsWholeIntsInRange) {
  EXPECT_EQ(parse_int("12"), 12);
  EXPECT_EQ(parse_int("-1"), -1);
  EXPECT_EQ(parse_int("+7"), 7);
  EXPECT_EQ(parse_int(std::to_string(INT_MAX)), INT_MAX);
  EXPECT_EQ(parse_int(std::to_string(INT_MIN)), INT_MIN);
  for (const std::string bad : {"", "1.0", "1e3", " 4", "4 ", "0x4", "2147483648", "-2147483649", "99999999999999999999", "7a", "-"})
    EXPECT_FALSE(parse_int(bad).has_value()) << "'" << bad << "'";
}

TEST(Numbers, RandomValuesReadBackExactly) {
  std::mt19937_64 rng(20261207);
  std::uniform_int_distribution<int> ints(INT_MIN, INT_MAX);
  std::uniform_real_distribution<double> reals(-1e6, 1e6);
  for (int i = 0; i < 2000; ++i) {
    const int n = ints(rng);
    EXPECT_EQ(parse_int(std::to_string(n)), n);
    const double x = reals(rng);
    std::ostringstream o;
    o.precision(17);
    o << x;
    EXPECT_EQ(parse_finite(o.str()), x) << o.str();
  }
}

TEST(StepCount, CountsAndFractionsOfARun) {
  EXPECT_EQ(StepCount::parse("3").of(50), 3);
  EXPECT_EQ(StepCount::parse("0.25").of(50), 12);
  EXPECT_EQ(StepCount::parse("0.25").of(20), 5);
  EXPECT_EQ(StepCount::parse("0.2").of(50), 10);  // floor with a tolerance: 0.2 * 50 is 10, not 9
  EXPECT_EQ(StepCount::parse("1.0").of(7), 7);
  EXPECT_EQ(StepCount::parse("1").of(7), 1);  // a count, not the whole run
  EXPECT_EQ(StepCount::parse("0").of(7), 0);
  EXPECT_EQ(StepCount::parse("5e-1").of(10), 5);
  for (const char* bad : {"-1", "1.5", "-0.1", "x", "", "auto", "1e3"})
    EXPECT_THROW(StepCount::parse(bad), std::invalid_argument) << bad;
}

TEST(StepCount, TextReadsBackToTheSameKindAndSteps) {
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> frac(0.0, 1.0);
  std::uniform_int_distribution<int> count(0, 1000), steps(1, 200);
  for (int i = 0; i < 1000; ++i) {
    const StepCount f = StepCount::parse(std::to_string(frac(rng)));
    const StepCount g = StepCount::parse(f.str());
    EXPECT_TRUE(g.is_fraction());
    const int n = steps(rng);
    EXPECT_EQ(g.of(n), f.of(n)) << f.str();
    const StepCount c = StepCount::fixed(count(rng));
    EXPECT_EQ(StepCount::parse(c.str()).of(n), c.count);
    EXPECT_FALSE(StepCount::parse(c.str()).is_fraction());
  }
  EXPECT_EQ(StepCount::parse("1.0").str(), "1.0");
  EXPECT_EQ(StepCount::parse("0").str(), "0");
}

}  // namespace
}  // namespace ditgen
