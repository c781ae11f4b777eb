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

}  // namespace ditgen::pipeline
