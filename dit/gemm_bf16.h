// The bfloat16 GEMM behind gemm::Backend::bf16: Y (rows×out) = X (rows×in) · Wᵀ with X and W
// rounded to bfloat16 (round to nearest even, as vcvtne2ps2bf16 does) and products summed in
// float32 by vdpbf16ps, about twice the float32 FMA rate. Only where bf16_gemm_available().
#pragma once

#include <cstdint>

namespace ditgen::gemm {

// The CPU has AVX-512 BF16 and the kernel was compiled with it (else it is a stub).
bool bf16_gemm_available();

// Row-major X (rows×in), W (out×in), Y (rows×out); any sizes ≥ 1. OpenMP threads over row slabs.
void matmul_nt_bf16(const float* x, int64_t rows, int64_t in, const float* W, int64_t out, float* y);

// Plain twin for the tests: the same bfloat16 rounding of the inputs, double accumulation.
void matmul_nt_bf16_ref(const float* x, int64_t rows, int64_t in, const float* W, int64_t out, float* y);

// x rounded to bfloat16 and back as the hardware does it: nearest even, denormals to zero, NaN
// stays NaN.
float round_bf16(float x);

}  // namespace ditgen::gemm
