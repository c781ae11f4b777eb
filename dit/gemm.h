// The GEMM behind ops::linear, chosen at run time: Eigen (always there), OpenBLAS found with
// dlopen (no link-time dependency; the process usually has it loaded already through OpenCV's
// LAPACK), or bf16 (inputs rounded to bfloat16, float32 sums: dit/gemm_bf16.h, CPUs with AVX-512
// BF16). OpenBLAS picks its kernels from OPENBLAS_CORETYPE when it loads, and
// 0.3.21 does not recognise Zen 5 (it falls back to AVX2, and machines may pin Haswell): the
// ditgen executable therefore asks for SkylakeX before anything loads (apps/openblas_env.h).
#pragma once

#include <cstdint>
#include <string>

namespace ditgen::gemm {

enum class Backend { automatic, eigen, openblas, bf16 };

Backend parse_backend(const std::string& s);  // "auto", "eigen", "openblas", "bf16"; throws std::invalid_argument
std::string backend_name(Backend b);

// Loads OpenBLAS on first call (thread-safe); false if no usable library was found.
bool openblas_available();
// Which library was loaded and with which core ("openblas-openmp SkylakeX"), or why not.
std::string openblas_description();

// Process-wide choice for ops::linear; automatic = OpenBLAS when available, else Eigen.
// Throws std::invalid_argument when OpenBLAS or bf16 is asked for and is not available.
void set_backend(Backend b);
Backend active_backend();  // never automatic

// Y (rows×out, row-major) = X (rows×in, row-major) · Wᵀ, W (out×in, row-major), through `b`.
void matmul_nt(Backend b, const float* x, int64_t rows, int64_t in, const float* W, int64_t out, float* y);

}  // namespace ditgen::gemm
