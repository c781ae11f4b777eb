#pragma once
// HDF5 weight files (docs/weights.md): config as root attributes, one dataset per tensor,
// float32/float16/bfloat16 on disk, float32 in memory.
#include <string>
#include <vector>

#include "dit/config.h"
#include "dit/weights.h"

namespace ditgen::io {

constexpr int kFormatVersion = 1;

enum class DiskType { Float32, Float16, BFloat16 };
DiskType parse_disk_type(const std::string& s);  // "float32", "float16", "bfloat16"
std::string disk_type_name(DiskType t);

struct TensorInfo {
  std::string name;
  std::vector<int64_t> shape;
  std::string dtype;  // as stored
};

struct LoadedModel {
  DiTConfig config;
  DiTWeights weights;
  std::vector<TensorInfo> tensors;    // as found in the file, in table order
  std::vector<std::string> warnings;  // e.g. datasets the config does not name
};

// Throws std::runtime_error naming the file and, where it applies, the tensor or attribute
// and what was expected: missing file, not HDF5, wrong format or version, missing or bad
// config attribute, missing tensor, wrong shape, non-finite value.
LoadedModel load_weights(const std::string& path);
// Reads the config and the tensor table only.
LoadedModel inspect_weights(const std::string& path);

// Loads from an in-memory image of an HDF5 file (fuzzing and tests).
LoadedModel load_weights_from_memory(const void* data, size_t size);

// Writes atomically (temporary file, then rename).
void save_weights(const std::string& path, const DiTConfig& cfg, DiTWeights& weights, DiskType type,
                  bool overwrite = true);

}  // namespace ditgen::io
