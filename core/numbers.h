#pragma once
// Whole-text number parsing for flags and spec values, one rule for every caller: the text is
// exactly one number (no spaces around it, nothing after it), or there is no value. Callers word
// their own errors, since they know what the number was for.
#include <optional>
#include <string>

namespace ditgen {

// A finite decimal number ("0.25", "-3", "1e-3"); not "inf", "nan", hex floats or " 1".
std::optional<double> parse_finite(const std::string& text);

// A base-10 integer that fits an int, optional leading '-' or '+' ("12", "-1"); not "1.0", "1e3".
std::optional<int> parse_int(const std::string& text);

// A number of sampler steps written as a count ("5") or as a fraction of the run, any text with a
// '.', 'e' or 'E' ("0.25": the first floor(0.25 * steps) steps).
struct StepCount {
  int count = 0;
  double fraction = -1;  // >= 0: a fraction (count unused)

  // Throws std::invalid_argument "'TEXT' is not a step count or a fraction in [0, 1]".
  static StepCount parse(const std::string& text);
  static StepCount fixed(int count) { return StepCount{count, -1}; }
  bool is_fraction() const { return fraction >= 0; }
  int of(int steps) const;  // the number of steps in a run of `steps`
  std::string str() const;  // reads back to the same value and kind ("0.5", "1.0", "4")
};

}  // namespace ditgen
