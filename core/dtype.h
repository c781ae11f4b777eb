#pragma once
// Element types of weights on disk (safetensors names) and their conversions to and from float32.
// bfloat16: the top 16 bits of a float32. float16: IEEE binary16 (1 sign, 5 exponent bits with
// bias 15, 10 mantissa bits). Both widen to float32 exactly; float32 -> bfloat16 rounds to
// nearest, ties to even, keeps subnormals, and keeps NaN a NaN.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the conversions read little-endian data in place");

namespace ditgen {

enum class DType { F32, BF16, F16, I64 };  // I64: step counts and timesteps in reference files

// The safetensors spelling: "F32", "BF16", "F16", "I64".
constexpr const char* dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "F32";
    case DType::BF16: return "BF16";
    case DType::F16: return "F16";
    case DType::I64: return "I64";
  }
  return "?";
}

constexpr size_t dtype_size(DType t) { return t == DType::I64 ? 8 : t == DType::F32 ? 4 : 2; }

// The DType named `s` (exact, case-sensitive safetensors spelling), or nothing.
inline std::optional<DType> parse_dtype(std::string_view s) {
  for (DType t : {DType::F32, DType::BF16, DType::F16, DType::I64})
    if (s == dtype_name(t)) return t;
  return std::nullopt;
}

inline uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

inline float bits_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline float bf16_to_float(uint16_t h) { return bits_float(uint32_t(h) << 16); }

// Round to nearest, ties to even; finite values beyond the largest bfloat16 become infinities,
// subnormals are kept (no flush to zero). A NaN stays a NaN of the same sign and top payload bits,
// made quiet (a payload held only in the low 16 bits would otherwise truncate to infinity).
inline uint16_t float_to_bf16(float f) {
  const uint32_t u = float_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x0040u);
  return uint16_t((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

// Exact for every pattern: zeros, subnormals (scaled through a float subtraction), normals,
// infinities, and NaNs (payload and sign kept). Branch-free, so that loops over it vectorise.
inline float f16_to_float(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  const uint32_t shifted = uint32_t(h & 0x7fffu) << 13;  // exponent and mantissa in float position
  const uint32_t exp = shifted & 0x0f800000u;
  const uint32_t normal = shifted + ((127u - 15u) << 23);
  const uint32_t inf_nan = normal + ((128u - 16u) << 23);
  // Zero or subnormal: m * 2^-24 = (2^-14 * (1 + m/1024)) - 2^-14, exact in float32.
  const uint32_t small = float_bits(bits_float(normal + (1u << 23)) - bits_float(113u << 23));
  const uint32_t mag = exp == 0x0f800000u ? inf_nan : exp == 0 ? small : normal;
  return bits_float(mag | sign);
}

// n 16-bit patterns at `src` (any alignment) widened by `widen` (inlined, so the loop vectorises).
template <float (*widen)(uint16_t)>
inline void widen_16(const unsigned char* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, src + 2 * i, 2);
    dst[i] = widen(h);
  }
}

// n elements of type `t` at `src` (any alignment, little-endian as on disk) to float32 (I64:
// exact up to 2^24 in magnitude, rounded beyond).
inline void convert_to_float(DType t, const void* src, float* dst, int64_t n) {
  const unsigned char* s = static_cast<const unsigned char*>(src);
  if (n <= 0) return;
  switch (t) {
    case DType::F32: std::memcpy(dst, s, size_t(n) * 4); return;
    case DType::BF16: widen_16<bf16_to_float>(s, dst, n); return;
    case DType::F16: widen_16<f16_to_float>(s, dst, n); return;
    case DType::I64:
      for (int64_t i = 0; i < n; ++i) {
        int64_t v;
        std::memcpy(&v, s + 8 * i, 8);
        dst[i] = float(v);
      }
      return;
  }
}

}  // namespace ditgen
