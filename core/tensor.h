#pragma once
// A dense float32 tensor: row-major, 64-byte aligned, shape carried at run time.
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <new>
#include <string>
#include <vector>

namespace ditgen {

struct AlignedDeleter {
  void operator()(float* p) const { ::operator delete[](p, std::align_val_t(64)); }
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::vector<int64_t> shape) { reset(std::move(shape)); }
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
      return *this;
    }
    reset(o.shape_);
    std::copy(o.data(), o.data() + size_, data());
    return *this;
  }
  Tensor(Tensor&&) noexcept = default;
  Tensor& operator=(Tensor&&) noexcept = default;

  // Reallocates only when the element count grows; contents are unspecified afterwards.
  void reset(std::vector<int64_t> shape) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    shape_ = std::move(shape);
    if (n > capacity_) {
      data_.reset(static_cast<float*>(::operator new[](sizeof(float) * static_cast<size_t>(n > 0 ? n : 1),
                                                       std::align_val_t(64))));
      capacity_ = n;
    }
    size_ = n;
  }
  void fill(float v) { std::fill(data(), data() + size_, v); }

  float* data() { return data_.get(); }
  const float* data() const { return data_.get(); }
  int64_t size() const { return size_; }
  int rank() const { return static_cast<int>(shape_.size()); }
  int64_t dim(int i) const { return shape_.at(static_cast<size_t>(i < 0 ? i + rank() : i)); }
  const std::vector<int64_t>& shape() const { return shape_; }
  float& operator[](int64_t i) { return data_.get()[i]; }
  float operator[](int64_t i) const { return data_.get()[i]; }

 private:
  std::vector<int64_t> shape_;
  std::unique_ptr<float[], AlignedDeleter> data_;
  int64_t size_ = 0;
  int64_t capacity_ = 0;
};

std::string shape_string(const std::vector<int64_t>& shape);

}  // namespace ditgen
