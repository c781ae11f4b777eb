#include "pipeline/options.h"

#include <cmath>
#include <sstream>
#include <stdexcept>

namespace ditgen::pipeline {

void check_steps(int steps, const std::string& name) {
  if (steps < 1 || steps > kMaxSteps)
    throw std::invalid_argument(name + " " + std::to_string(steps) + " is out of range: expected 1 to " +
                                std::to_string(kMaxSteps));
}

void check_cfg(double cfg, const std::string& name) {
  if (!(std::isfinite(cfg) && cfg >= 0 && cfg <= kMaxCfg)) {
    std::ostringstream s;
    s << name << " " << cfg << " is out of range: expected 0 to " << kMaxCfg;
    throw std::invalid_argument(s.str());
  }
}

vae::VaeTiling vae_tiling_from_pixels(std::optional<int> tile, std::optional<int> overlap) {
  if (!tile) {
    if (overlap) throw std::invalid_argument("--vae-tile-overlap needs --vae-tile PX (tiling is off without it)");
    return {};
  }
  if (*tile < 8 || *tile % 8 != 0)
    throw std::invalid_argument("--vae-tile " + std::to_string(*tile) + ": expected a multiple of 8 pixels, at least 8");
  const int band = overlap.value_or(64);
  if (band < 0 || band % 8 != 0 || band >= *tile)
    throw std::invalid_argument("--vae-tile-overlap " + std::to_string(band) + (overlap ? "" : " (the default)") +
                                ": expected a multiple of 8 pixels from 0 to less than --vae-tile " + std::to_string(*tile));
  return vae::VaeTiling{*tile / 8, band / 8};
}

}  // namespace ditgen::pipeline
