#include "cond/umt5_linear.h"

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "dit/gemm.h"
#include "dit/gemm_bf16.h"

namespace ditgen::cond {

namespace {

// Output rows per block: 128 rows of 4096 bf16 are 1 MiB on disk, 2 MiB widened, so a block
// stays in the core's cache between its conversion and its GEMM, and 4096 or 10240 outputs
// give enough blocks for every thread.
constexpr int64_t kBlockRows = 128;

void check(const MappedWeight& W, DType compute) {
  if (W.dtype != DType::F32 && W.dtype != DType::BF16 && W.dtype != DType::F16)
    throw std::invalid_argument(std::string("mapped weight of dtype ") + dtype_name(W.dtype) +
                                ", expected F32, BF16 or F16");
  if (compute != DType::F32 && compute != DType::BF16)
    throw std::invalid_argument(std::string("mapped_matmul computes in F32 or BF16, not ") + dtype_name(compute));
  if (compute == DType::BF16 && !gemm::bf16_gemm_available())
    throw std::invalid_argument("bf16 computation needs a CPU with AVX-512 BF16, which this one lacks");
  if (W.out < 1 || W.in < 1 || !W.data)
    throw std::invalid_argument("mapped weight of shape [" + std::to_string(W.out) + ", " + std::to_string(W.in) +
                                "], expected a non-empty matrix");
}

const unsigned char* row_ptr(const MappedWeight& W, int64_t row) {
  return static_cast<const unsigned char*>(W.data) + size_t(row) * size_t(W.in) * dtype_size(W.dtype);
}

}  // namespace

void mapped_matmul(const float* x, int64_t rows, const MappedWeight& W, DType compute, float* y) {
  check(W, compute);
  const int64_t blocks = (W.out + kBlockRows - 1) / kBlockRows;
  const gemm::Backend backend = gemm::active_backend();
#pragma omp parallel
  {
    std::vector<float> w(size_t(kBlockRows * W.in));  // (n, in) widened block
    std::vector<float> yb(size_t(rows * kBlockRows));  // (rows, n) block of y
#pragma omp for schedule(dynamic)
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t o0 = b * kBlockRows, n = std::min(kBlockRows, W.out - o0);
      const unsigned char* src = row_ptr(W, o0);
      if (compute == DType::BF16 && W.dtype == DType::BF16 && reinterpret_cast<uintptr_t>(src) % 2 == 0) {
        // bf16 rows packed as they are: no float32 pass in between.
        const gemm::PackedBF16 p = gemm::PackedBF16::pack(reinterpret_cast<const uint16_t*>(src), W.in, n);
        gemm::matmul_nt_packed(x, rows, p, yb.data());
      } else if (compute == DType::BF16) {
        convert_to_float(W.dtype, src, w.data(), n * W.in);
        const gemm::PackedBF16 p = gemm::PackedBF16::pack(w.data(), W.in, n);
        gemm::matmul_nt_packed(x, rows, p, yb.data());
      } else {
        convert_to_float(W.dtype, src, w.data(), n * W.in);
        gemm::matmul_nt(backend, x, rows, W.in, w.data(), n, yb.data());
      }
      for (int64_t r = 0; r < rows; ++r) std::copy_n(yb.data() + r * n, n, y + r * W.out + o0);
    }
  }
}

void mapped_matmul_ref(const float* x, int64_t rows, const MappedWeight& W, DType compute, float* y) {
  check(W, DType::F32);  // the shape and dtype; the twin needs no bf16 hardware
  const bool bf16 = compute == DType::BF16;
  std::vector<float> w(size_t(W.in));
  for (int64_t o = 0; o < W.out; ++o) {
    convert_to_float(W.dtype, row_ptr(W, o), w.data(), W.in);
    for (int64_t r = 0; r < rows; ++r) {
      double acc = 0;
      for (int64_t i = 0; i < W.in; ++i) {
        const float a = bf16 ? gemm::round_bf16(x[r * W.in + i]) : x[r * W.in + i];
        const float b = bf16 ? gemm::round_bf16(w[size_t(i)]) : w[size_t(i)];
        acc += double(a) * double(b);
      }
      y[r * W.out + o] = float(acc);
    }
  }
}

}  // namespace ditgen::cond
