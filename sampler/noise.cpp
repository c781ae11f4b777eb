// Seeded Gaussian noise (docs/model.md section 9): splitmix64 counter + Box-Muller, computed
// independently per element, so any thread count and any split of the range give the same bits.
#include <cmath>
#include <stdexcept>

#include "sampler/sampler.h"

namespace ditgen::sampler {

namespace {
inline uint64_t mix(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
}  // namespace

void gaussian_noise(uint64_t seed, float* out, int64_t n, int64_t offset) {
  if (n < 0 || offset < 0) throw std::invalid_argument("gaussian_noise: negative count or offset");
  const uint64_t key = mix(seed);
  constexpr double kTwoPow53 = 1.0 / 9007199254740992.0;  // 2^-53
  constexpr double kTwoPi = 6.283185307179586;            // the double nearest 2 pi
#pragma omp parallel for schedule(static) if (n > 16384)
  for (int64_t j = 0; j < n; ++j) {
    const uint64_t i = static_cast<uint64_t>(offset + j);
    const uint64_t a = mix(key + 2 * i), b = mix(key + 2 * i + 1);
    const double u1 = static_cast<double>((a >> 11) + 1) * kTwoPow53;  // (0, 1]
    const double u2 = static_cast<double>(b >> 11) * kTwoPow53;        // [0, 1)
    out[j] = static_cast<float>(std::sqrt(-2.0 * std::log(u1)) * std::cos(kTwoPi * u2));
  }
}

}  // namespace ditgen::sampler
