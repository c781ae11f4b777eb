// Portable half of dit/gemm_bf16.h (no special instruction sets): the rounding and the reference.
#include <cmath>
#include <cstring>
#include <vector>

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
