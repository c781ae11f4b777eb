#include "cond/umt5_bucket.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace ditgen::cond {

namespace {
void check(int num_buckets, int max_distance) {
  if (num_buckets < 4 || num_buckets % 2 != 0)
    throw std::invalid_argument("relative position buckets: " + std::to_string(num_buckets) +
                                " buckets, expected an even number >= 4");
  if (max_distance <= num_buckets / 4)
    throw std::invalid_argument("relative position buckets: max distance " + std::to_string(max_distance) +
                                ", expected more than a quarter of the buckets (" + std::to_string(num_buckets / 4) + ")");
}
}  // namespace

int relative_position_bucket(int64_t rel, int num_buckets, int max_distance) {
  check(num_buckets, max_distance);
  const int half = num_buckets / 2, exact = half / 2;
  const int base = rel > 0 ? half : 0;
  const int64_t a = std::llabs(rel);
  if (a < exact) return base + int(a);
  // float32 throughout, as the official tensor code: the scalar divisor log(max/exact) is a
  // double there, rounded to float32 when it meets the float32 tensor.
  const float ratio = float(a) / float(exact);
  const float scale = float(std::log(double(max_distance) / double(exact)));
  const float large = std::log(ratio) / scale * float(half - exact);
  const int64_t bucket = exact + int64_t(large);  // truncation, as the official .long()
  return base + int(bucket < half - 1 ? bucket : half - 1);
}

int relative_position_bucket_ref(int64_t rel, int num_buckets, int max_distance) {
  check(num_buckets, max_distance);
  const int half = num_buckets / 2, exact = half / 2;
  const int base = rel > 0 ? half : 0;
  const double a = std::fabs(double(rel));
  if (a < exact) return base + int(a);
  const double large = std::log(a / exact) / std::log(double(max_distance) / exact) * (half - exact);
  const double bucket = std::min(double(half - 1), exact + std::floor(large));
  return base + int(bucket);
}

std::vector<int> relative_bucket_table(int64_t L, int num_buckets, int max_distance) {
  if (L < 1) throw std::invalid_argument("relative position buckets: " + std::to_string(L) + " tokens, expected >= 1");
  std::vector<int> t(size_t(2 * L - 1));
  for (int64_t r = -(L - 1); r <= L - 1; ++r) t[size_t(r + L - 1)] = relative_position_bucket(r, num_buckets, max_distance);
  return t;
}

}  // namespace ditgen::cond
