// The umT5 encoder's parts against their plain twins on random inputs: the relative-position
// buckets (also against the official code's table in tests/data/wan/tiny_t5_goldens.safetensors),
// the GEMM that reads weights in place from a mapping (F32, BF16 and F16 rows at odd addresses),
// and the attention with a relative-position bias.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "cond/umt5_attention.h"
#include "cond/umt5_bucket.h"
#include "cond/umt5_linear.h"
#include "dit/gemm_bf16.h"
#include "io/safetensors.h"
#include "tests/test_util.h"

namespace ditgen::cond {
namespace {

const std::string kGoldens = std::string(DITGEN_SOURCE_DIR) + "/tests/data/wan/tiny_t5_goldens.safetensors";

double max_rel(const float* a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    num = std::max(num, std::fabs(double(a[i]) - b[i]));
    den = std::max(den, std::fabs(double(b[i])));
  }
  return num / den;
}

TEST(UmT5Bucket, MatchesTheOfficialTable) {
  const io::SafetensorsFile g = io::SafetensorsFile::open(kGoldens);
  const std::vector<float> rel = g.to_float("bucket_rel"), want = g.to_float("bucket");
  ASSERT_EQ(rel.size(), want.size());
  ASSERT_GT(rel.size(), 2000u);  // -1100 ... 1100: past the log range's max distance 128
  for (size_t i = 0; i < rel.size(); ++i)
    ASSERT_EQ(relative_position_bucket(int64_t(rel[i]), 32, 128), int(want[i])) << "rel " << rel[i];
}

TEST(UmT5Bucket, MatchesThePlainTwin) {
  for (int buckets : {4, 8, 16, 32, 64})
    for (int max_distance : {buckets / 4 + 1, 20, 128, 1000})
      for (int64_t rel = -3000; rel <= 3000; ++rel)
        ASSERT_EQ(relative_position_bucket(rel, buckets, max_distance),
                  relative_position_bucket_ref(rel, buckets, max_distance))
            << "rel " << rel << ", " << buckets << " buckets, max distance " << max_distance;
}

TEST(UmT5Bucket, TableCoversEveryQueryKeyPair) {
  for (int64_t L : {1, 2, 7, 129, 300, 512}) {
    const std::vector<int> t = relative_bucket_table(L, 32, 128);
    ASSERT_EQ(t.size(), size_t(2 * L - 1));
    for (int64_t i = 0; i < L; i += 7)
      for (int64_t j = 0; j < L; ++j)
        ASSERT_EQ(t[size_t(j - i + L - 1)], relative_position_bucket_ref(j - i, 32, 128)) << L << " " << i << " " << j;
  }
  // Both directions and the saturation: key after query in the upper half.
  EXPECT_EQ(relative_position_bucket(0, 32, 128), 0);
  EXPECT_EQ(relative_position_bucket(1, 32, 128), 17);
  EXPECT_EQ(relative_position_bucket(-1, 32, 128), 1);
  EXPECT_EQ(relative_position_bucket(16, 32, 128), 26);
  EXPECT_EQ(relative_position_bucket(-500, 32, 128), 15);
  EXPECT_EQ(relative_position_bucket(500, 32, 128), 31);
}

TEST(UmT5Bucket, RefusesBadSettings) {
  EXPECT_THROW(relative_position_bucket(3, 31, 128), std::invalid_argument);
  EXPECT_THROW(relative_position_bucket(3, 32, 8), std::invalid_argument);
  EXPECT_THROW(relative_bucket_table(0, 32, 128), std::invalid_argument);
}

// W (out, in) stored in `dtype` at `offset` bytes past an aligned address (an odd offset, as a
// safetensors file may leave it, takes the conversion path of bf16 rows).
struct StoredWeight {
  std::vector<unsigned char> bytes;
  MappedWeight view;
};
StoredWeight store(const std::vector<float>& w, int64_t out, int64_t in, DType dtype, size_t offset) {
  StoredWeight s;
  const size_t es = dtype_size(dtype);
  s.bytes.resize(offset + w.size() * es);
  for (size_t i = 0; i < w.size(); ++i) {
    if (dtype == DType::F32) {
      std::memcpy(&s.bytes[offset + 4 * i], &w[i], 4);
    } else {
      // bf16, or a float16 built from the bf16 value's range-safe part (values are small).
      uint16_t h = float_to_bf16(w[i]);
      if (dtype == DType::F16) {
        const float f = w[i];
        const uint32_t u = float_bits(f);
        const int e = int((u >> 23) & 0xff) - 127 + 15;
        h = e <= 0 ? uint16_t((u >> 16) & 0x8000u) : uint16_t(((u >> 16) & 0x8000u) | (uint32_t(e) << 10) | ((u >> 13) & 0x3ffu));
      }
      std::memcpy(&s.bytes[offset + 2 * i], &h, 2);
    }
  }
  s.view = MappedWeight{s.bytes.data() + offset, dtype, out, in};
  return s;
}

TEST(UmT5Linear, MappedMatmulMatchesThePlainTwin) {
  std::mt19937_64 rng = test::fresh_rng();
  std::uniform_int_distribution<int64_t> rows_d(1, 37), dim_d(1, 300);
  std::vector<DType> computes = {DType::F32};
  if (gemm::bf16_gemm_available()) computes.push_back(DType::BF16);
  for (int trial = 0; trial < 36; ++trial) {
    const int64_t rows = rows_d(rng), in = dim_d(rng), out = trial == 0 ? 300 : dim_d(rng);
    const DType dtype = trial % 3 == 0 ? DType::F32 : trial % 3 == 1 ? DType::BF16 : DType::F16;
    const std::vector<float> x = test::random_vector(size_t(rows * in), rng);
    const size_t offset = trial % 2 ? 1 : 0;  // std::vector's storage is at least 2-byte aligned
    const StoredWeight w = store(test::random_vector(size_t(out * in), rng, 0.1f), out, in, dtype, offset);
    for (DType compute : computes) {
      std::vector<float> y(size_t(rows * out)), ref(y.size());
      mapped_matmul(x.data(), rows, w.view, compute, y.data());
      mapped_matmul_ref(x.data(), rows, w.view, compute, ref.data());
      EXPECT_LE(max_rel(y.data(), ref), 1e-5) << "rows " << rows << " in " << in << " out " << out << " "
                                               << dtype_name(dtype) << " at offset " << offset << " compute " << dtype_name(compute);
    }
  }
}

TEST(UmT5Linear, RefusesWhatItCannotRead) {
  const std::vector<float> x(4, 1.0f);
  std::vector<float> y(4);
  int64_t raw[4] = {1, 2, 3, 4};
  EXPECT_THROW(mapped_matmul(x.data(), 1, MappedWeight{raw, DType::I64, 4, 1}, DType::F32, y.data()), std::invalid_argument);
  EXPECT_THROW(mapped_matmul(x.data(), 1, MappedWeight{raw, DType::F32, 0, 4}, DType::F32, y.data()), std::invalid_argument);
  EXPECT_THROW(mapped_matmul(x.data(), 1, MappedWeight{raw, DType::F32, 1, 4}, DType::F16, y.data()), std::invalid_argument);
}

TEST(UmT5Attention, MatchesThePlainTwin) {
  std::mt19937_64 rng = test::fresh_rng();
  struct Case {
    int64_t L;
    int heads;
    int64_t head_dim;
  };
  std::vector<Case> cases = {{1, 1, 1}, {1, 3, 8}, {2, 2, 5}, {20, 4, 12}, {129, 2, 64}, {300, 3, 17}};
  std::uniform_int_distribution<int64_t> L_d(1, 200), dh_d(1, 70);
  std::uniform_int_distribution<int> h_d(1, 5);
  for (int i = 0; i < 8; ++i) cases.push_back({L_d(rng), h_d(rng), dh_d(rng)});
  for (const Case& c : cases) {
    const int64_t W = c.heads * c.head_dim;
    // Scores of a few units, as a trained encoder's: the softmax is neither flat nor one-hot.
    const std::vector<float> q = test::random_vector(size_t(c.L * W), rng, 1.0f / std::sqrt(float(c.head_dim)));
    const std::vector<float> k = test::random_vector(size_t(c.L * W), rng);
    const std::vector<float> v = test::random_vector(size_t(c.L * W), rng);
    const std::vector<float> bias = test::random_vector(size_t(c.heads * (2 * c.L - 1)), rng);
    std::vector<float> out(size_t(c.L * W)), ref(out.size());
    biased_attention(q.data(), k.data(), v.data(), c.L, c.heads, c.head_dim, bias.data(), out.data());
    biased_attention_ref(q.data(), k.data(), v.data(), c.L, c.heads, c.head_dim, bias.data(), ref.data());
    EXPECT_LE(max_rel(out.data(), ref), 1e-5) << "L " << c.L << " heads " << c.heads << " head_dim " << c.head_dim;
  }
}

TEST(UmT5Attention, BiasDependsOnKeyMinusQuery) {
  // One head, q = 0 so only the bias decides: the bias for rel = +1 (the next token) is large,
  // so every query but the last copies the next token's value; the last has no next token and
  // takes its own (rel 0 bias, the next largest).
  const int64_t L = 5;
  std::vector<float> q(L, 0.0f), k(L, 0.0f), v(L), out(L);
  for (int64_t i = 0; i < L; ++i) v[size_t(i)] = float(10 * i);
  std::vector<float> bias(2 * L - 1, -50.0f);
  bias[size_t(L - 1 + 1)] = 50.0f;
  bias[size_t(L - 1)] = 0.0f;
  biased_attention(q.data(), k.data(), v.data(), L, 1, 1, bias.data(), out.data());
  for (int64_t i = 0; i + 1 < L; ++i) EXPECT_NEAR(out[size_t(i)], v[size_t(i + 1)], 1e-4) << i;
  EXPECT_NEAR(out[size_t(L - 1)], v[size_t(L - 1)], 1e-4);
}

}  // namespace
}  // namespace ditgen::cond
