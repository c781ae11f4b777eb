// Tensor storage in float32 and bfloat16: allocation, copies, conversion against the scalar
// rounding rule of core/dtype.h, and refusal of a storage type it does not hold.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "core/tensor.h"
#include "tests/test_util.h"

namespace ditgen {
namespace {

TEST(Tensor, Bf16HoldsHalfTheBytesAndConvertsBothWays) {
  auto rng = test::fresh_rng();
  std::uniform_int_distribution<int64_t> side(0, 9);
  for (int trial = 0; trial < 20; ++trial) {
    const std::vector<int64_t> shape{side(rng), side(rng) + 1, 3};
    Tensor f(shape);
    std::normal_distribution<float> nd(0.0f, 100.0f);
    for (int64_t i = 0; i < f.size(); ++i) f[i] = nd(rng);
    const Tensor b = f.to(DType::BF16);
    EXPECT_EQ(b.dtype(), DType::BF16);
    EXPECT_EQ(b.shape(), shape);
    EXPECT_EQ(b.bytes() * 2, f.bytes());
    const Tensor back = b.to(DType::F32);
    for (int64_t i = 0; i < f.size(); ++i) {
      ASSERT_EQ(b.bf16()[i], float_to_bf16(f[i])) << "element " << i;
      ASSERT_EQ(back[i], bf16_to_float(float_to_bf16(f[i])));
      ASSERT_LE(std::fabs(back[i] - f[i]), std::ldexp(std::fabs(f[i]), -8)) << "element " << i;  // half a bf16 ulp
    }
  }
}

TEST(Tensor, CopiesKeepTheDtypeAndResetReusesStorage) {
  Tensor a({2, 3}, DType::BF16);
  for (int64_t i = 0; i < a.size(); ++i) a.bf16()[i] = uint16_t(0x3f80 + i);
  const Tensor c = a;
  EXPECT_EQ(c.dtype(), DType::BF16);
  for (int64_t i = 0; i < a.size(); ++i) EXPECT_EQ(c.bf16()[i], a.bf16()[i]);
  Tensor r = a;
  r.reset({3});  // keeps bf16
  EXPECT_EQ(r.dtype(), DType::BF16);
  EXPECT_EQ(r.bytes(), 6u);
  r.reset({2, 2}, DType::F32);
  EXPECT_EQ(r.dtype(), DType::F32);
  EXPECT_EQ(r.bytes(), 16u);
  const Tensor empty;
  const Tensor e2 = empty;  // no storage: copies as none
  EXPECT_EQ(e2.size(), 0);
}

TEST(Tensor, RefusesStorageTypesItDoesNotHold) {
  try {
    Tensor t({4}, DType::F16);
    FAIL() << "expected an error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("F16"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace ditgen
