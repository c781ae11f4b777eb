#include "core/numbers.h"

#include <cctype>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <sstream>
#include <stdexcept>

namespace ditgen {

namespace {

// Only the characters of a plain decimal number: what strtod reads beyond these (spaces, "inf",
// "nan", hex) is refused before it is read.
bool decimal_chars(const std::string& t) {
  if (t.empty()) return false;
  for (char c : t)
    if (!(std::isdigit(static_cast<unsigned char>(c)) || c == '.' || c == 'e' || c == 'E' || c == '-' || c == '+'))
      return false;
  return true;
}

}  // namespace

std::optional<double> parse_finite(const std::string& text) {
  if (!decimal_chars(text)) return std::nullopt;
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (end != text.c_str() + text.size() || !std::isfinite(v)) return std::nullopt;
  return v;
}

std::optional<int> parse_int(const std::string& text) {
  if (!decimal_chars(text) || text.find_first_of(".eE") != std::string::npos) return std::nullopt;
  char* end = nullptr;
  errno = 0;
  const long v = std::strtol(text.c_str(), &end, 10);
  if (end != text.c_str() + text.size() || errno == ERANGE || v < INT_MIN || v > INT_MAX) return std::nullopt;
  return int(v);
}

StepCount StepCount::parse(const std::string& text) {
  const auto fail = [&] {
    return std::invalid_argument("'" + text + "' is not a step count or a fraction in [0, 1]");
  };
  StepCount s;
  if (text.find_first_of(".eE") != std::string::npos) {
    const auto f = parse_finite(text);
    if (!f || !(*f >= 0 && *f <= 1)) throw fail();
    s.fraction = *f;
  } else {
    const auto n = parse_int(text);
    if (!n || *n < 0) throw fail();
    s.count = *n;
  }
  return s;
}

int StepCount::of(int steps) const {
  return is_fraction() ? int(std::floor(fraction * steps + 1e-9)) : count;
}

std::string StepCount::str() const {
  if (!is_fraction()) return std::to_string(count);
  std::ostringstream o;
  o << fraction;
  std::string t = o.str();
  if (t.find_first_of(".eE") == std::string::npos) t += ".0";  // still a fraction when read back
  return t;
}

}  // namespace ditgen
