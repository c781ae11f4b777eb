#include "attention/sparse/schedule.h"

#include <algorithm>
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
  try {
    s.steps = StepCount::parse(text);
  } catch (const std::invalid_argument&) {
    throw std::invalid_argument("dense_steps = '" + text + "' is not a step count >= 0, a fraction in [0, 1] like 0.25, or auto");
  }
  return s;
}

std::string DenseSchedule::steps_str() const { return kind == Kind::Auto ? "auto" : steps.str(); }

int DenseSchedule::fixed_dense_steps(int num_steps) const { return kind == Kind::Auto ? 0 : steps.of(num_steps); }

bool DenseSchedule::anchor_step(int step, int num_steps) const {
  if (refresh <= 0 || kind == Kind::Auto) return false;
  const int first = std::max(fixed_dense_steps(num_steps) - 1, 0);
  return step >= first && (step - first) % refresh == 0;
}

void AutoSwitch::reset(int num_layers) {
  switch_step_.assign(size_t(num_layers), -1);
  last_error_.assign(size_t(num_layers), -1.0);
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
