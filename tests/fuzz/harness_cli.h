#pragma once
// Body of the fuzz_cli_values harness: the parsers of command-line values (the app's own, which
// harness.h's engine-only harnesses do not link). Shared with the regression replay in
// tests/robustness_test.cpp, like harness.h. Contract: the parser throws its documented
// exception (UsageError for the app's parsers, std::invalid_argument for the enum parsers) with
// a message naming the bad text and what was expected, or returns a value that satisfies its
// contract and reads back the same when written out again. Returns "" when it held, else what
// broke; other exception types propagate.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include "apps/bench_util.h"
#include "apps/cli_common.h"
#include "apps/commands.h"
#include "attention/kernel/kernel.h"
#include "dit/gemm.h"
#include "sampler/sampler.h"

namespace ditgen::fuzz {

namespace cli_detail {

inline bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// A parser's message about `text`: non-empty, containing `quoted` (the option and the text as
// given) and `expected` (what the parser wanted).
inline std::string check_message(const char* parser, const std::string& text, const std::string& msg,
                                  const std::string& quoted, const std::string& expected) {
  if (msg.empty()) return std::string(parser) + ": empty message for '" + text + "'";
  if (!contains(msg, quoted)) return std::string(parser) + ": message '" + msg + "' does not quote '" + quoted + "'";
  if (!contains(msg, expected)) return std::string(parser) + ": message '" + msg + "' does not say '" + expected + "'";
  return "";
}

// The enum parsers match whole names exactly: a value read from `text` has `text` as its name,
// and its name reads back as the same value.
template <class E>
std::string enum_one(const char* parser, const std::string& text, E (*parse)(const std::string&),
                     std::string (*name)(E), const char* expected) {
  E v;
  try {
    v = parse(text);
  } catch (const std::invalid_argument& e) {
    return check_message(parser, text, e.what(), "'" + text + "'", expected);
  }
  const std::string n = name(v);
  if (n != text) return std::string(parser) + ": '" + text + "' accepted as '" + n + "'";
  try {
    if (parse(n) != v) return std::string(parser) + ": name '" + n + "' reads back as another value";
  } catch (const std::invalid_argument& e) {
    return std::string(parser) + ": name '" + n + "' does not read back: " + e.what();
  }
  return "";
}

inline std::string int_list_one(const std::string& text, const char* what) {
  std::vector<int> v;
  try {
    v = app::parse_int_list(text, what);
  } catch (const app::UsageError& e) {
    // "WHAT is empty" only for an empty text; otherwise "WHAT 'TEXT': 'ITEM' is not an integer".
    if (text.empty()) return check_message("parse_int_list", text, e.what(), std::string(what) + " is empty", "empty");
    return check_message("parse_int_list", text, e.what(), std::string(what) + " '" + text + "'", "is not an integer");
  }
  if (v.empty()) return "parse_int_list: '" + text + "' accepted as an empty list";
  // One value per comma-separated item: an empty item is refused wherever it stands.
  if (v.size() != size_t(std::count(text.begin(), text.end(), ',')) + 1)
    return "parse_int_list: '" + text + "' has " + std::to_string(std::count(text.begin(), text.end(), ',') + 1) +
           " items but gave " + std::to_string(v.size()) + " values";
  std::string back;
  for (size_t i = 0; i < v.size(); ++i) back += (i ? "," : "") + std::to_string(v[i]);
  std::vector<int> again;
  try {
    again = app::parse_int_list(back, what);
  } catch (const app::UsageError& e) {
    return "parse_int_list: '" + back + "' (from '" + text + "') does not read back: " + e.what();
  }
  if (again != v) return "parse_int_list: '" + back + "' (from '" + text + "') reads back differently";
  return "";
}

inline std::string labels_one(const std::string& text) {
  std::array<int, 2> v{};
  try {
    v = app::parse_labels(text);
  } catch (const app::UsageError& e) {
    return check_message("parse_labels", text, e.what(), "--labels '" + text + "'", "expected two digits 0-9");
  }
  for (int d : v)
    if (d < 0 || d > 9) return "parse_labels: '" + text + "' gave label " + std::to_string(d);
  // Strict format: exactly "D,D", so the text is its own canonical form.
  const std::string back = std::to_string(v[0]) + "," + std::to_string(v[1]);
  if (back != text) return "parse_labels: '" + text + "' accepted as '" + back + "'";
  if (app::parse_labels(back) != v) return "parse_labels: '" + back + "' reads back differently";
  return "";
}

inline std::string densities_one(const std::string& text) {
  std::vector<double> v;
  try {
    v = app::bench::parse_densities(text);
  } catch (const app::UsageError& e) {
    const std::string msg = e.what();
    if (msg == "bench attention: --density is empty") {
      if (!app::bench::split_list(text).empty()) return "parse_densities: '" + text + "' called empty";
      return "";
    }
    // "bench attention: --density 'ITEM' is not a number in (0, 1]", ITEM one item of the text.
    const std::string lead = "bench attention: --density '", tail = "' is not a number in (0, 1]";
    if (msg.size() < lead.size() + tail.size() || msg.compare(0, lead.size(), lead) != 0 ||
        msg.compare(msg.size() - tail.size(), tail.size(), tail) != 0)
      return "parse_densities: unexpected message '" + msg + "' for '" + text + "'";
    const std::string item = msg.substr(lead.size(), msg.size() - lead.size() - tail.size());
    if (item.empty() || !contains(text, item)) return "parse_densities: message '" + msg + "' names no item of '" + text + "'";
    return "";
  }
  if (v.empty()) return "parse_densities: '" + text + "' accepted as an empty list";
  std::string back;
  for (size_t i = 0; i < v.size(); ++i) {
    if (!(std::isfinite(v[i]) && v[i] > 0 && v[i] <= 1))
      return "parse_densities: '" + text + "' gave density " + std::to_string(v[i]);
    char buf[40];
    std::snprintf(buf, sizeof buf, "%.17g", v[i]);
    back += (i ? "," : "") + std::string(buf);
  }
  std::vector<double> again;
  try {
    again = app::bench::parse_densities(back);
  } catch (const app::UsageError& e) {
    return "parse_densities: '" + back + "' (from '" + text + "') does not read back: " + e.what();
  }
  if (again != v) return "parse_densities: '" + back + "' (from '" + text + "') reads back differently";
  return "";
}

}  // namespace cli_detail

// The first byte picks the parser (modulo 7, counted from ASCII '0' so that the seeds' '0'..'6'
// pick 0..6), the rest is the text.
inline std::string cli_values_one(const uint8_t* data, size_t size) {
  if (size < 1 || size > 4096) return "";
  // A command-line argument ends at its first NUL (argv strings): cut the text there.
  std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
  text.resize(std::min(text.size(), text.find('\0')));
  using namespace cli_detail;
  switch ((int(data[0]) - '0' + 49) % 7) {
    case 0: return int_list_one(text, "--labels");
    case 1: return int_list_one(text, "--steps-probed");
    case 2: return labels_one(text);
    case 3: return enum_one("parse_isa", text, attn::parse_isa, attn::isa_name, "expected auto, portable, avx2, avx512");
    case 4: return enum_one("parse_solver", text, sampler::parse_solver, sampler::solver_name, sampler::solver_choices().c_str());
    case 5: return enum_one("parse_backend", text, gemm::parse_backend, gemm::backend_name, "expected auto, eigen, openblas");
    default: return densities_one(text);
  }
}

}  // namespace ditgen::fuzz
