#include "io/safetensors_set.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>

namespace ditgen::io {

void SafetensorsSet::add(SafetensorsFile f) {
  for (const SafetensorsTensor& t : f.tensors())
    if (!where_.emplace(t.name, files_.size()).second)
      throw std::runtime_error("safetensors set '" + path_ + "': tensor '" + t.name + "' is in both '" +
                               files_[where_.at(t.name)].path() + "' and '" + f.path() + "'");
  files_.push_back(std::move(f));
}

SafetensorsSet SafetensorsSet::open(const std::string& path) {
  SafetensorsSet s;
  s.path_ = path;
  s.add(SafetensorsFile::open(path));
  return s;
}

SafetensorsSet SafetensorsSet::open_index(const std::string& index_path) {
  auto fail = [&](const std::string& what) {
    throw std::runtime_error("safetensors index '" + index_path + "': " + what);
  };
  std::ifstream in(index_path);
  if (!in) fail("cannot be read");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    fail(std::string("is not JSON: ") + e.what());
  }
  if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object() || j["weight_map"].empty())
    fail("has no weight_map object naming the shards");
  std::set<std::string> shards;
  for (const auto& [name, file] : j["weight_map"].items()) {
    if (!file.is_string()) fail("weight_map['" + name + "'] is not a file name");
    const std::string f = file.get<std::string>();
    if (f.empty() || f.find('/') != std::string::npos) fail("weight_map['" + name + "'] = '" + f + "' is not a file name in the index's folder");
    shards.insert(f);
  }
  SafetensorsSet s;
  s.path_ = index_path;
  const std::filesystem::path dir = std::filesystem::path(index_path).parent_path();
  for (const std::string& f : shards) s.add(SafetensorsFile::open((dir / f).string()));
  for (const auto& [name, file] : j["weight_map"].items()) {
    const auto it = s.where_.find(name);
    if (it == s.where_.end() || std::filesystem::path(s.files_[it->second].path()).filename() != file.get<std::string>())
      fail("tensor '" + name + "' is not in its shard '" + file.get<std::string>() + "'");
  }
  return s;
}

const SafetensorsFile& SafetensorsSet::file(const std::string& name) const {
  const auto it = where_.find(name);
  if (it == where_.end()) throw std::runtime_error("'" + path_ + "' has no tensor '" + name + "'");
  return files_[it->second];
}

uint64_t SafetensorsSet::tensor_bytes() const {
  uint64_t n = 0;
  for (const SafetensorsFile& f : files_)
    for (const SafetensorsTensor& t : f.tensors()) n += t.bytes;
  return n;
}

}  // namespace ditgen::io
