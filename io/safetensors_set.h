#pragma once
// A model's tensors across one or more safetensors files: a single file, or the shards that a
// Hugging Face index (`*.safetensors.index.json`, {"weight_map": {name: shard file}}) lists.
// Every shard is memory-mapped and validated; a name found in two files is refused.
#include <string>
#include <unordered_map>
#include <vector>

#include "io/safetensors.h"

namespace ditgen::io {

class SafetensorsSet {
 public:
  // One file.
  static SafetensorsSet open(const std::string& path);
  // The shards an index names (relative to the index's folder). Throws std::runtime_error
  // naming the index and what is wrong: not JSON, no weight_map, a shard missing or bad, a
  // tensor the map names that its shard lacks, a name in two shards.
  static SafetensorsSet open_index(const std::string& index_path);

  bool has(const std::string& name) const { return where_.count(name) != 0; }
  // The file holding `name`; throws std::runtime_error naming the set and the tensor.
  const SafetensorsFile& file(const std::string& name) const;
  const std::vector<SafetensorsFile>& files() const { return files_; }
  // The file, or the index, the set was opened from.
  const std::string& path() const { return path_; }
  // Sum of the tensors' bytes on disk.
  uint64_t tensor_bytes() const;

 private:
  void add(SafetensorsFile f);
  std::string path_;
  std::vector<SafetensorsFile> files_;
  std::unordered_map<std::string, size_t> where_;
};

}  // namespace ditgen::io
