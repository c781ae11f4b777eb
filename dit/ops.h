#pragma once
// Row-wise layers of the DiT block. Each fast op has a plain `_ref` twin (double accumulation)
// used by the tests. Matrices are row-major; "rows" is the number of tokens (times batch).
#include <cstdint>

namespace ditgen::ops {

// y (rows, out) = x (rows, in) · Wᵀ + b, W (out, in), b (out) or nullptr. Eigen GEMM, OpenMP threads.
void linear(const float* x, int64_t rows, int64_t in, const float* W, const float* b, int64_t out, float* y);
// y (rows, out) += b (out).
void add_bias(float* y, int64_t rows, int64_t out, const float* b);
void linear_ref(const float* x, int64_t rows, int64_t in, const float* W, const float* b, int64_t out, float* y);

// LayerNorm over the last dimension (width) with optional affine (w, b may be nullptr).
void layer_norm(const float* x, int64_t rows, int64_t width, double eps, const float* w, const float* b, float* y);
void layer_norm_ref(const float* x, int64_t rows, int64_t width, double eps, const float* w, const float* b, float* y);

// adaLN: y = LN(x) (1 + scale) + shift, scale/shift (width) shared by all rows.
void layer_norm_modulate(const float* x, int64_t rows, int64_t width, double eps, const float* shift,
                         const float* scale, float* y);

// y = x · rsqrt(mean(x²) + eps) · w over the last dimension (in place allowed).
void rms_norm(const float* x, int64_t rows, int64_t width, double eps, const float* w, float* y);
void rms_norm_ref(const float* x, int64_t rows, int64_t width, double eps, const float* w, float* y);
// One row of rms_norm on the calling thread, for loops that are already parallel (a nested
// OpenMP region per row costs more than the row).
void rms_norm_row(const float* x, int64_t width, double eps, const float* w, float* y);

// GELU with the tanh approximation, in place.
void gelu_tanh(float* x, int64_t n);
float gelu_tanh_ref(float u);
// SiLU into y (in place allowed).
void silu(const float* x, int64_t n, float* y);

// Rows (B, n, NH·Dh) -> heads (B·NH, n, Dh) with to_heads, else back: the pair of permutations
// around every attention call.
void move_heads(const float* src, float* dst, int batch, int64_t n, int heads, int head_dim, bool to_heads);

// x (rows, width) += gate (width) ⊙ y (rows, width).
void gated_add(float* x, const float* y, const float* gate, int64_t rows, int64_t width);

}  // namespace ditgen::ops
