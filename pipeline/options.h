#pragma once
// The ranges of a run's options, checked in one place by the library and by the command line
// (which passes the flag's name, e.g. "--steps", so the message names what the user typed).
#include <string>

namespace ditgen::pipeline {

inline constexpr int kMaxSteps = 10000;
inline constexpr double kMaxCfg = 100;

// Throws std::invalid_argument "<name> <value> is out of range: expected 1 to 10000".
void check_steps(int steps, const std::string& name);
// Throws std::invalid_argument "<name> <value> is out of range: expected 0 to 100" (NaN too).
void check_cfg(double cfg, const std::string& name);

}  // namespace ditgen::pipeline
