#pragma once
// What the calibration files of `ditgen calibrate` (PARO, STA) share: an atomic JSON write and
// range-checked integers on read.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

namespace ditgen::attn {

// Writes `j` to `path` through a temporary file and a rename; throws std::runtime_error.
void write_calibration_json(const std::string& path, const nlohmann::json& j);
// Parses `path`; throws std::runtime_error naming the file.
nlohmann::json read_calibration_json(const std::string& path);

// An integer in [lo, hi] or std::runtime_error naming `what` and the value: a float or an
// out-of-range value would be undefined behaviour in the conversion to int, and a negative
// index would overrun buffers (tests/fuzz/fuzz_paro_calib).
int json_integer(const nlohmann::json& v, const std::string& what, int64_t lo, int64_t hi);

}  // namespace ditgen::attn
