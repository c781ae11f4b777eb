#include "attention/methods/calib_file.h"

#include <cstdio>
#include <fstream>
#include <stdexcept>

namespace ditgen::attn {

void write_calibration_json(const std::string& path, const nlohmann::json& j) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp);
    if (!f) throw std::runtime_error("cannot write calibration file '" + path + "'");
    f << j.dump(1) << "\n";
    if (!f) throw std::runtime_error("cannot write calibration file '" + path + "'");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) throw std::runtime_error("cannot write calibration file '" + path + "'");
}

nlohmann::json read_calibration_json(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw std::runtime_error("cannot read calibration file '" + path + "'");
  try {
    return nlohmann::json::parse(f);
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error("calibration file '" + path + "': " + e.what());
  }
}

int json_integer(const nlohmann::json& v, const std::string& what, int64_t lo, int64_t hi) {
  const bool ok = v.is_number_integer() && (v.is_number_unsigned()
                                                ? v.get<uint64_t>() <= uint64_t(hi) && int64_t(v.get<uint64_t>()) >= lo
                                                : v.get<int64_t>() >= lo && v.get<int64_t>() <= hi);
  if (!ok) throw std::runtime_error(what + " = " + v.dump() + " is not an integer in " + std::to_string(lo) + ".." + std::to_string(hi));
  return int(v.get<int64_t>());
}

}  // namespace ditgen::attn
