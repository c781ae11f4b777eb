#pragma once
// A dense tensor of float32 or bfloat16 elements: row-major, 64-byte aligned, shape carried at
// run time. Weights stay bfloat16 in memory where the file has them so (half the bytes of
// float32); activations are float32.
#include <algorithm>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace ditgen {

struct AlignedDeleter {
  void operator()(unsigned char* p) const { ::operator delete[](p, std::align_val_t(64)); }
};

class Tensor {
 public:
  Tensor() = default;
  // dtype F32 or BF16 (std::invalid_argument for another).
  explicit Tensor(std::vector<int64_t> shape, DType dtype = DType::F32) { reset(std::move(shape), dtype); }
  Tensor(std::initializer_list<int64_t> shape) { reset(std::vector<int64_t>(shape)); }
  Tensor(const Tensor& o) { *this = o; }
  // A tensor without storage (default-constructed, e.g. the absent label tables of a
  // raw-context model, or zero elements) copies as one: reset() of an empty shape would give it
  // a scalar's element to read from a null pointer.
  Tensor& operator=(const Tensor& o) {
    if (this == &o) return *this;
    if (!o.data_) {
      shape_ = o.shape_;
      size_ = o.size_;
      dtype_ = o.dtype_;
      return *this;
    }
    reset(o.shape_, o.dtype_);
    std::memcpy(data_.get(), o.data_.get(), bytes());
    return *this;
  }
  Tensor(Tensor&&) noexcept = default;
  Tensor& operator=(Tensor&&) noexcept = default;

  // Reallocates only when the byte count grows; contents are unspecified afterwards.
  void reset(std::vector<int64_t> shape) { reset(std::move(shape), dtype_); }
  void reset(std::vector<int64_t> shape, DType dtype) {
    if (dtype != DType::F32 && dtype != DType::BF16)
      throw std::invalid_argument(std::string("tensors hold F32 or BF16 elements, not ") + dtype_name(dtype));
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    shape_ = std::move(shape);
    dtype_ = dtype;
    const int64_t need = n * int64_t(dtype_size(dtype));
    if (need > capacity_) {
      data_.reset(static_cast<unsigned char*>(
          ::operator new[](static_cast<size_t>(need > 0 ? need : 4), std::align_val_t(64))));
      capacity_ = need;
    }
    size_ = n;
  }
  void fill(float v) { std::fill(data(), data() + size_, v); }

  DType dtype() const { return dtype_; }
  // Elements of a float32 tensor.
  float* data() {
    assert(dtype_ == DType::F32);
    return reinterpret_cast<float*>(data_.get());
  }
  const float* data() const {
    assert(dtype_ == DType::F32);
    return reinterpret_cast<const float*>(data_.get());
  }
  // Elements of a bfloat16 tensor (the top 16 bits of a float32 each).
  uint16_t* bf16() {
    assert(dtype_ == DType::BF16);
    return reinterpret_cast<uint16_t*>(data_.get());
  }
  const uint16_t* bf16() const {
    assert(dtype_ == DType::BF16);
    return reinterpret_cast<const uint16_t*>(data_.get());
  }
  // The storage as bytes, whatever the dtype.
  unsigned char* raw() { return data_.get(); }
  const unsigned char* raw() const { return data_.get(); }
  // A copy in `dtype`: float32 -> bfloat16 rounds to nearest even, bfloat16 -> float32 is exact.
  Tensor to(DType dtype) const {
    Tensor t(shape_, dtype);
    if (dtype == dtype_) {
      if (data_) std::memcpy(t.data_.get(), data_.get(), bytes());
    } else if (dtype == DType::BF16) {
      for (int64_t i = 0; i < size_; ++i) t.bf16()[i] = float_to_bf16(data()[i]);
    } else {
      convert_to_float(DType::BF16, bf16(), t.data(), size_);
    }
    return t;
  }
  int64_t size() const { return size_; }
  size_t bytes() const { return size_t(size_) * dtype_size(dtype_); }
  int rank() const { return static_cast<int>(shape_.size()); }
  int64_t dim(int i) const { return shape_.at(static_cast<size_t>(i < 0 ? i + rank() : i)); }
  const std::vector<int64_t>& shape() const { return shape_; }
  float& operator[](int64_t i) { return data()[i]; }
  float operator[](int64_t i) const { return data()[i]; }

 private:
  std::vector<int64_t> shape_;
  std::unique_ptr<unsigned char[], AlignedDeleter> data_;
  int64_t size_ = 0;
  int64_t capacity_ = 0;
  DType dtype_ = DType::F32;
};

std::string shape_string(const std::vector<int64_t>& shape);

}  // namespace ditgen
