#pragma once
// safetensors files (docs/weights.md): an 8-byte little-endian header length N, N bytes of JSON
// header ({"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}),
// then the data section that the offsets index. Read through a read-only memory mapping, after
// the whole header has been validated; written atomically (temporary file, then rename).
#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/dtype.h"

namespace ditgen::io {

// Limits on what the reader accepts (the reference implementation's header cap is the same).
constexpr uint64_t kSafetensorsMaxHeaderBytes = 100'000'000;
constexpr int kSafetensorsMaxRank = 8;

struct SafetensorsTensor {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;  // empty for a scalar
  uint64_t offset = 0;         // bytes from the start of the data section (data_offsets[0])
  uint64_t bytes = 0;          // data_offsets[1] - data_offsets[0] == numel * dtype_size
  int64_t numel() const;       // product of shape (1 for a scalar)
};

// A tensor's bytes inside the mapping, valid while the SafetensorsFile lives. `data` has no
// particular alignment (a file's offsets need not be multiples of the element size): read it
// with memcpy or convert_to_float.
struct TensorView {
  const void* data = nullptr;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  int64_t numel = 0;
  uint64_t bytes = 0;
};

class SafetensorsFile {
 public:
  // Maps `path` read-only and validates the header completely. Throws std::runtime_error
  // naming the file and, where it applies, the tensor and what was expected: missing file, not
  // a regular file, shorter than 8 bytes, header length beyond the file or the cap, header not
  // a UTF-8 JSON object, duplicate keys, a bad __metadata__, an entry that is not an object,
  // an empty name, a missing field, an unsupported dtype (F64, I64, ... are named), a shape
  // that is not a list of at most 8 non-negative integers or whose size overflows, offsets
  // outside the data section, of the wrong extent for dtype and shape, or overlapping.
  static SafetensorsFile open(const std::string& path);

  SafetensorsFile(SafetensorsFile&& o) noexcept;
  SafetensorsFile& operator=(SafetensorsFile&& o) noexcept;
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;
  ~SafetensorsFile();  // unmaps

  const std::string& path() const { return path_; }
  uint64_t file_bytes() const { return size_; }
  uint64_t data_start() const { return data_start_; }  // 8 + header length
  // In the header's order.
  const std::vector<SafetensorsTensor>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  bool has(const std::string& name) const { return index_.count(name) != 0; }
  // The following throw std::runtime_error naming the file and the tensor when it is absent.
  const SafetensorsTensor& tensor(const std::string& name) const;
  TensorView view(const std::string& name) const;
  // numel() float32 values into dst: F32 copied, BF16 and F16 widened exactly.
  void read_float(const std::string& name, float* dst) const;
  std::vector<float> to_float(const std::string& name) const;
  // numel() bfloat16 values (bit patterns) into dst: BF16 copied, F32 and F16 rounded to
  // nearest even.
  void read_bf16(const std::string& name, uint16_t* dst) const;
  std::vector<uint16_t> to_bf16(const std::string& name) const;
  // Drops the pages that lie wholly inside the tensor's bytes from this process's resident set
  // (a loader that has copied the tensor no longer needs them; a later read maps them again).
  void drop_pages(const std::string& name) const;

 private:
  SafetensorsFile() = default;
  void unmap();

  std::string path_;
  const unsigned char* map_ = nullptr;
  uint64_t size_ = 0;
  uint64_t data_start_ = 0;
  std::vector<SafetensorsTensor> tensors_;
  std::unordered_map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// One tensor to write, given either as float32 values (`values`; stored as `dtype` F32 or BF16,
// rounded to nearest even) or as bytes already in `dtype` (`bytes`, any of the three, copied as
// they are). Exactly one of the two is set; neither is needed for a tensor of no elements.
struct SafetensorsWriteTensor {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const float* values = nullptr;
  const void* bytes = nullptr;
};

// Writes the tensors in the order given, contiguous, after a header padded with spaces so that
// the data section starts at a multiple of 8 bytes; `metadata` becomes __metadata__ (omitted
// when empty). Atomic: a temporary file in the same directory renamed into place; an existing
// file is replaced only with `overwrite`. Throws std::runtime_error naming the path (and the
// tensor) for a bad tensor (empty, duplicate or reserved name, names or metadata that are not
// UTF-8, a negative dimension, rank above 8, F16 from float values, no data) or a failed write.
void write_safetensors(const std::string& path, const std::vector<SafetensorsWriteTensor>& tensors,
                       const std::map<std::string, std::string>& metadata = {}, bool overwrite = true);

}  // namespace ditgen::io
