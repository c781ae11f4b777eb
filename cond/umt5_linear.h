#pragma once
// The umT5 encoder's linear layers, run straight from the weight file's mapping: W (out, in)
// stays in the file's dtype (bf16 for the release) and is never copied whole into memory. The
// release's 11.4 GB would otherwise be resident twice during the load (file pages and the
// copy) or need a pack pass; with at most 512 token rows the product is bound by reading W, so
// each block of output rows is widened (or packed) just before its GEMM, while it is in cache.
#include <cstdint>

#include "core/dtype.h"

namespace ditgen::cond {

// A weight matrix in place: `out` rows of `in` elements of `dtype` (F32, BF16 or F16),
// row-major, any alignment (safetensors offsets need not be aligned).
struct MappedWeight {
  const void* data = nullptr;
  DType dtype = DType::BF16;
  int64_t out = 0, in = 0;
};

// y (rows, out) = x (rows, in) · Wᵀ. `compute` F32: W widened exactly to float32, the process's
// float32 GEMM (dit/gemm.h); BF16: the bf16 kernel (x and W rounded to bfloat16, float32 sums;
// needs gemm::bf16_gemm_available()). Blocks of output rows are spread over the OpenMP
// threads, each running its GEMM on one thread.
void mapped_matmul(const float* x, int64_t rows, const MappedWeight& W, DType compute, float* y);

// Plain twin for the tests: W widened element by element, double accumulation (x and W rounded
// to bfloat16 first when `compute` is BF16).
void mapped_matmul_ref(const float* x, int64_t rows, const MappedWeight& W, DType compute, float* y);

}  // namespace ditgen::cond
