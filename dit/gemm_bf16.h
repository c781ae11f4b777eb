// The bfloat16 GEMM behind gemm::Backend::bf16: Y (rows×out) = X (rows×in) · Wᵀ with X and W
// rounded to bfloat16 (round to nearest even, as vcvtne2ps2bf16 does) and products summed in
// float32 by vdpbf16ps, about twice the float32 FMA rate. Only where bf16_gemm_available().
#pragma once

#include <cstdint>
#include <cstdlib>
#include <memory>

namespace ditgen::gemm {

// Outputs per panel of the packed layout (the kernel's NR x 16).
constexpr int kPanelOutputs = 64;

// W (out×in) as the kernel reads it, packed once (at load) instead of on every call: panel j
// holds outputs [64j, 64j + 64), pair p of K holds the 32-bit (bf16 W[n][2p], bf16 W[n][2p+1]
// << 16) of each output n, zero past `out` and past `in`. About 2 bytes a weight.
class PackedBF16 {
 public:
  PackedBF16() = default;
  PackedBF16(PackedBF16&&) noexcept = default;
  PackedBF16& operator=(PackedBF16&&) noexcept = default;
  PackedBF16(const PackedBF16& o) { *this = o; }
  PackedBF16& operator=(const PackedBF16& o);
  // From float32 weights, rounded as the kernel rounds (round_bf16).
  static PackedBF16 pack(const float* W, int64_t in, int64_t out);
  // From bfloat16 bit patterns (as stored in a weight file), taken as they are.
  static PackedBF16 pack(const uint16_t* W, int64_t in, int64_t out);
  bool empty() const { return !data_; }
  int64_t in() const { return in_; }
  int64_t out() const { return out_; }
  int64_t pairs() const { return (in_ + 1) / 2; }
  int64_t panels() const { return (out_ + kPanelOutputs - 1) / kPanelOutputs; }
  int64_t bytes() const { return panels() * pairs() * kPanelOutputs * 4; }
  const uint32_t* data() const { return data_.get(); }
  // W back as float32 (out×in), each value the bf16 the kernel multiplies by.
  void unpack(float* W) const;
  // W back as bf16 bit patterns (out×in).
  void unpack_bits(uint16_t* W) const;

 private:
  struct FreeDeleter {
    void operator()(void* p) const { std::free(p); }
  };
  void allocate(int64_t in, int64_t out);
  int64_t in_ = 0, out_ = 0;
  std::unique_ptr<uint32_t[], FreeDeleter> data_;
};

// The CPU has AVX-512 BF16 and the kernel was compiled with it (else it is a stub).
bool bf16_gemm_available();

// Row-major X (rows×in), W (out×in), Y (rows×out); any sizes ≥ 1. OpenMP threads over row slabs.
void matmul_nt_bf16(const float* x, int64_t rows, int64_t in, const float* W, int64_t out, float* y);

// The same product with W packed beforehand (bit-identical to matmul_nt_bf16 of the weights
// that were packed).
void matmul_nt_packed(const float* x, int64_t rows, const PackedBF16& W, float* y);

// The same product with X given as bf16 already, each row `W.pairs()` 32-bit pairs (the row's
// bf16 values in order, a zero after an odd last one): no conversion of X, half its bytes.
// Bit-identical to matmul_nt_packed of the float X these values round from.
void matmul_pairs_packed(const uint32_t* x, int64_t rows, const PackedBF16& W, float* y);

// x rounded to bfloat16 as the kernel rounds it (round_bf16), as bit patterns; OpenMP threads.
void to_bf16(const float* x, int64_t n, uint16_t* out);

// Plain twin for the tests: the same bfloat16 rounding of the inputs, double accumulation.
void matmul_nt_bf16_ref(const float* x, int64_t rows, int64_t in, const float* W, int64_t out, float* y);

// x rounded to bfloat16 and back as the hardware does it: nearest even, denormals to zero, NaN
// stays NaN.
float round_bf16(float x);

// Plain twin of matmul_nt_packed: x rounded by round_bf16, W unpacked, double accumulation.
void matmul_nt_packed_ref(const float* x, int64_t rows, const PackedBF16& W, float* y);

}  // namespace ditgen::gemm
