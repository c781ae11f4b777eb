// Flow-matching sigma schedule with the Wan timestep shift (docs/model.md section 8).
#include <cmath>
#include <stdexcept>
#include <string>

#include "sampler/sampler.h"

namespace ditgen::sampler {

namespace {
void check_shift(double shift) {
  if (!(shift > 0.0) || !std::isfinite(shift))
    throw std::invalid_argument("sampler: shift must be a finite number > 0, got " + std::to_string(shift));
}
}  // namespace

double shift_sigma(double sigma, double shift) {
  check_shift(shift);
  return shift * sigma / (1.0 + (shift - 1.0) * sigma);
}

std::vector<double> flow_sigmas(int steps, double shift) {
  if (steps < 1) throw std::invalid_argument("sampler: steps must be >= 1, got " + std::to_string(steps));
  check_shift(shift);
  constexpr double kSigmaMax = 0.999;  // as Wan: the first model call is never at pure noise
  std::vector<double> sigmas(static_cast<size_t>(steps) + 1);
  for (int i = 0; i < steps; ++i)
    sigmas[i] = shift_sigma(kSigmaMax * (1.0 - static_cast<double>(i) / steps), shift);
  sigmas[steps] = 0.0;
  return sigmas;
}

}  // namespace ditgen::sampler
