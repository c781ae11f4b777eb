#include "attention/sparse/schedule.h"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <stdexcept>

namespace ditgen::attn {

DenseSchedule DenseSchedule::parse(const std::string& text, int dense_layers) {
  DenseSchedule s;
  if (dense_layers < 0) throw std::invalid_argument("dense_layers = " + std::to_string(dense_layers) + " must be >= 0");
  s.dense_layers = dense_layers;
  if (text == "auto") {
    s.kind = Kind::Auto;
    return s;
  }
  size_t used = 0;
  const bool fractional = text.find_first_of(".eE") != std::string::npos;
  try {
    if (fractional) {
      s.fraction = std::stod(text, &used);
      s.kind = Kind::Fraction;
    } else {
      s.count = std::stoi(text, &used);
      s.kind = Kind::Count;
    }
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != text.size())
    throw std::invalid_argument("dense_steps = '" + text + "' is not a step count, a fraction like 0.25, or auto");
  if (fractional && !(s.fraction >= 0 && s.fraction <= 1))
    throw std::invalid_argument("dense_steps = '" + text + "': a fraction must be in [0, 1]");
  if (!fractional && s.count < 0) throw std::invalid_argument("dense_steps = '" + text + "' must be >= 0");
  return s;
}

std::string DenseSchedule::steps_str() const {
  switch (kind) {
    case Kind::Auto: return "auto";
    case Kind::Count: return std::to_string(count);
    case Kind::Fraction: {
      std::ostringstream o;
      o << fraction;
      std::string t = o.str();
      if (t.find_first_of(".eE") == std::string::npos) t += ".0";  // keep it a fraction when read back
      return t;
    }
  }
  return "?";
}

int DenseSchedule::fixed_dense_steps(int num_steps) const {
  switch (kind) {
    case Kind::Count: return count;
    case Kind::Fraction: return int(std::floor(fraction * num_steps + 1e-9));
    case Kind::Auto: return 0;
  }
  return 0;
}

bool DenseSchedule::anchor_step(int step, int num_steps) const {
  if (refresh <= 0 || kind == Kind::Auto) return false;
  const int first = std::max(fixed_dense_steps(num_steps) - 1, 0);
  return step >= first && (step - first) % refresh == 0;
}

void AutoSwitch::begin_call(int step, int num_layers) {
  if (step < last_step_ || int(switch_step_.size()) != num_layers) {
    switch_step_.assign(size_t(num_layers), -1);
    last_error_.assign(size_t(num_layers), -1.0);
  }
  last_step_ = step;
}

bool AutoSwitch::switched(int layer) const {
  return layer < int(switch_step_.size()) && switch_step_[size_t(layer)] >= 0;
}

int AutoSwitch::switch_step(int layer) const {
  return layer < int(switch_step_.size()) ? switch_step_[size_t(layer)] : -1;
}

void AutoSwitch::record(int layer, int step, double error, bool switch_now) {
  if (layer >= int(switch_step_.size())) return;
  last_error_[size_t(layer)] = error;
  if (switch_now && switch_step_[size_t(layer)] < 0) switch_step_[size_t(layer)] = step + 1;
}

}  // namespace ditgen::attn
