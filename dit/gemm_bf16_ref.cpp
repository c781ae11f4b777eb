// Portable half of dit/gemm_bf16.h (no special instruction sets): the rounding and the reference.
#include <cmath>
#include <cstdlib>
#include <new>
#include <cstring>
#include <vector>

#include "core/dtype.h"
#include "dit/gemm_bf16.h"

namespace ditgen::gemm {

float round_bf16(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  if (std::isnan(x)) {
    u = (u | 0x00400000u) & 0xFFFF0000u;  // quiet NaN, as the hardware gives
  } else if ((u & 0x7F800000u) == 0) {
    u &= 0x80000000u;  // vcvtne2ps2bf16 flushes denormal inputs to signed zero
  } else {
    u = (u + 0x7FFFu + ((u >> 16) & 1u)) & 0xFFFF0000u;  // round to nearest even
  }
  std::memcpy(&x, &u, 4);
  return x;
}

void matmul_nt_bf16_ref(const float* x, int64_t rows, int64_t in, const float* W, int64_t out, float* y) {
  std::vector<float> wb(static_cast<size_t>(out * in)), xb(static_cast<size_t>(in));
  for (size_t i = 0; i < wb.size(); ++i) wb[i] = round_bf16(W[i]);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t i = 0; i < in; ++i) xb[size_t(i)] = round_bf16(x[r * in + i]);
    for (int64_t o = 0; o < out; ++o) {
      double acc = 0;
      for (int64_t i = 0; i < in; ++i) acc += double(xb[size_t(i)]) * double(wb[size_t(o * in + i)]);
      y[r * out + o] = float(acc);
    }
  }
}

}  // namespace ditgen::gemm

namespace ditgen::gemm {

void PackedBF16::allocate(int64_t in, int64_t out) {
  in_ = in;
  out_ = out;
  void* p = std::aligned_alloc(64, size_t((bytes() + 63) / 64 * 64));
  if (p == nullptr) throw std::bad_alloc();
  data_.reset(static_cast<uint32_t*>(p));
  std::memset(p, 0, size_t(bytes()));
}

PackedBF16& PackedBF16::operator=(const PackedBF16& o) {
  if (this == &o) return *this;
  if (o.empty()) {
    *this = PackedBF16();
    return *this;
  }
  allocate(o.in_, o.out_);
  std::memcpy(data_.get(), o.data_.get(), size_t(bytes()));
  return *this;
}

namespace {
// Fills a packed layout from bf16(W[n][i]) = get(n, i).
template <class Get>
void fill_panels(PackedBF16& P, uint32_t* dst, Get get) {
  const int64_t kp = P.pairs(), in = P.in(), out = P.out();
#pragma omp parallel for schedule(static)
  for (int64_t j = 0; j < P.panels(); ++j)
    for (int64_t l = 0; l < kPanelOutputs; ++l) {
      const int64_t n = j * kPanelOutputs + l;
      if (n >= out) break;
      uint32_t* col = dst + j * kp * kPanelOutputs + l;
      for (int64_t p = 0; p < kp; ++p) {
        const uint32_t lo = get(n, 2 * p), hi = 2 * p + 1 < in ? get(n, 2 * p + 1) : 0u;
        col[p * kPanelOutputs] = lo | (hi << 16);
      }
    }
}
}  // namespace

PackedBF16 PackedBF16::pack(const float* W, int64_t in, int64_t out) {
  PackedBF16 P;
  P.allocate(in, out);
  fill_panels(P, P.data_.get(), [&](int64_t n, int64_t i) { return float_bits(round_bf16(W[n * in + i])) >> 16; });
  return P;
}

PackedBF16 PackedBF16::pack(const uint16_t* W, int64_t in, int64_t out) {
  PackedBF16 P;
  P.allocate(in, out);
  fill_panels(P, P.data_.get(), [&](int64_t n, int64_t i) { return uint32_t(W[n * in + i]); });
  return P;
}

void PackedBF16::unpack_bits(uint16_t* W) const {
  const int64_t kp = pairs();
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < out_; ++n) {
    const uint32_t* col = data() + (n / kPanelOutputs) * kp * kPanelOutputs + n % kPanelOutputs;
    for (int64_t i = 0; i < in_; ++i) {
      const uint32_t v = col[(i / 2) * kPanelOutputs];
      W[n * in_ + i] = uint16_t(i % 2 ? v >> 16 : v & 0xFFFFu);
    }
  }
}

void PackedBF16::unpack(float* W) const {
  std::vector<uint16_t> bits(size_t(in_ * out_));
  unpack_bits(bits.data());
  for (size_t i = 0; i < bits.size(); ++i) W[i] = bf16_to_float(bits[i]);
}

void matmul_nt_packed_ref(const float* x, int64_t rows, const PackedBF16& W, float* y) {
  std::vector<float> w(size_t(W.out() * W.in()));
  W.unpack(w.data());
  for (float& v : w) v = round_bf16(v);  // the kernel reads subnormal bf16 weights as zero
  matmul_nt_bf16_ref(x, rows, W.in(), w.data(), W.out(), y);
}

}  // namespace ditgen::gemm
