// safetensors files (io/safetensors.h) and the element-type conversions (core/dtype.h):
// conversions against plain references over every 16-bit pattern, randomized round trips through
// the writer, and one hand-made file per validation rule, each checked for its message.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>

#include "core/dtype.h"
#include "io/safetensors.h"
#include "tests/test_util.h"

namespace ditgen {
namespace {

namespace fs = std::filesystem;

// ---- plain references, written from the formats' definitions ----

uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// A binary floating-point pattern with `exp_bits` exponent and `man_bits` mantissa bits, as a
// double: (-1)^s * 2^(1-bias) * m / 2^man_bits for subnormals, (-1)^s * 2^(e-bias) * (1 + m /
// 2^man_bits) otherwise. The all-ones exponent (infinity, NaN) is not handled here.
double decode(uint32_t bits, int exp_bits, int man_bits) {
  const int bias = (1 << (exp_bits - 1)) - 1;
  const uint32_t man = bits & ((1u << man_bits) - 1);
  const int e = int((bits >> man_bits) & ((1u << exp_bits) - 1));
  const bool neg = (bits >> (exp_bits + man_bits)) & 1;
  const double v = e == 0 ? std::ldexp(double(man), 1 - bias - man_bits)
                          : std::ldexp(double((1u << man_bits) + man), e - bias - man_bits);
  return neg ? -v : v;
}

// The float32 pattern a 16-bit pattern widens to. NaN: float32 NaN with the same sign and the
// payload in the top mantissa bits.
uint32_t ref_widen(uint16_t h, bool bf16) {
  const int exp_bits = bf16 ? 8 : 5, man_bits = bf16 ? 7 : 10;
  const uint32_t exp_all = (1u << exp_bits) - 1;
  const uint32_t sign = uint32_t(h >> 15) << 31, man = h & ((1u << man_bits) - 1);
  if (((h >> man_bits) & exp_all) == exp_all) return sign | 0x7f800000u | (man << (23 - man_bits));
  return bits_of(float(decode(h, exp_bits, man_bits)));  // exact: every such value is a float32
}

// float32 -> bfloat16 by the definition: of the two bfloat16 values around x, the nearer; on a
// tie the one with an even mantissa; past the largest finite value (measured against 2^128,
// where the next value would be), infinity. NaN, as core/dtype.h promises: the same sign and top
// 7 payload bits, quiet bit set.
uint16_t ref_to_bf16(float x) {
  const uint32_t u = bits_of(x);
  if (std::isnan(x)) return uint16_t((u >> 16) | 0x0040u);
  if (std::isinf(x)) return uint16_t(u >> 16);
  const uint16_t lo = uint16_t(u >> 16);  // toward zero
  const uint16_t hi = uint16_t(lo + 1);   // away from zero (may be infinity)
  auto magnitude = [](uint16_t h) {
    return (h & 0x7fffu) == 0x7f80u ? std::ldexp(1.0, 128) : std::fabs(decode(h, 8, 7));
  };
  const double ax = std::fabs(double(x)), dlo = ax - magnitude(lo), dhi = magnitude(hi) - ax;
  if (dlo < dhi) return lo;
  if (dhi < dlo) return hi;
  return (lo & 1) ? hi : lo;
}

// ---- dtype ----

TEST(DType, NamesSizesAndParsing) {
  EXPECT_STREQ(dtype_name(DType::F32), "F32");
  EXPECT_STREQ(dtype_name(DType::BF16), "BF16");
  EXPECT_STREQ(dtype_name(DType::F16), "F16");
  EXPECT_EQ(dtype_size(DType::F32), 4u);
  EXPECT_EQ(dtype_size(DType::BF16), 2u);
  EXPECT_EQ(dtype_size(DType::F16), 2u);
  EXPECT_EQ(dtype_size(DType::I64), 8u);
  for (DType t : {DType::F32, DType::BF16, DType::F16, DType::I64}) EXPECT_EQ(parse_dtype(dtype_name(t)), t);
  for (const char* bad : {"f32", "F64", "", "BF16 ", "float32"}) EXPECT_FALSE(parse_dtype(bad)) << bad;
}

TEST(DType, I64ToFloatIsExactUpTo2To24) {
  const std::vector<int64_t> v = {0, 1, -1, 999, -16777216, 16777216, 16777217, int64_t(1) << 40};
  std::vector<float> f(v.size());
  convert_to_float(DType::I64, v.data(), f.data(), int64_t(v.size()));
  for (size_t i = 0; i < v.size(); ++i) EXPECT_EQ(f[i], float(v[i])) << v[i];
  EXPECT_EQ(f[3], 999.0f);
  EXPECT_EQ(f[6], 16777216.0f);  // 2^24 + 1 rounds to even
}

TEST(DType, Bf16ToFloatEveryPattern) {
  int nans = 0;
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = bf16_to_float(uint16_t(h));
    ASSERT_EQ(bits_of(f), ref_widen(uint16_t(h), true)) << std::hex << h;
    nans += std::isnan(f);
  }
  EXPECT_EQ(nans, 2 * 127);  // exponent all ones, mantissa non-zero, both signs
  EXPECT_EQ(bf16_to_float(0x3f80), 1.0f);
  EXPECT_EQ(bf16_to_float(0xc000), -2.0f);
}

TEST(DType, F16ToFloatEveryPattern) {
  int nans = 0, subnormals = 0;
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = f16_to_float(uint16_t(h));
    ASSERT_EQ(bits_of(f), ref_widen(uint16_t(h), false)) << std::hex << h;
    nans += std::isnan(f);
    subnormals += ((h & 0x7c00u) == 0 && (h & 0x3ffu) != 0);
  }
  EXPECT_EQ(nans, 2 * 1023);
  EXPECT_EQ(subnormals, 2 * 1023);
  // Landmarks: 1, -2, the largest finite (65504), the smallest subnormal (2^-24), infinities.
  EXPECT_EQ(f16_to_float(0x3c00), 1.0f);
  EXPECT_EQ(f16_to_float(0xc000), -2.0f);
  EXPECT_EQ(f16_to_float(0x7bff), 65504.0f);
  EXPECT_EQ(f16_to_float(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(f16_to_float(0x8001), -std::ldexp(1.0f, -24));
  EXPECT_EQ(f16_to_float(0x03ff), std::ldexp(1023.0f, -24));
  EXPECT_EQ(f16_to_float(0x7c00), std::numeric_limits<float>::infinity());
  EXPECT_EQ(f16_to_float(0xfc00), -std::numeric_limits<float>::infinity());
  EXPECT_EQ(bits_of(f16_to_float(0x8000)), 0x80000000u);  // -0 keeps its sign
}

TEST(DType, FloatToBf16RoundsToNearestEven) {
  // Every bfloat16 pattern as the top half, with low halves below, at, and above the halfway
  // point (ties), their extremes, and a random one.
  std::mt19937_64 rng = test::fresh_rng();
  for (uint32_t h = 0; h < 65536; ++h)
    for (uint32_t low : {0u, 1u, 0x7fffu, 0x8000u, 0x8001u, 0xffffu, uint32_t(rng() & 0xffff)}) {
      const float x = from_bits((h << 16) | low);
      ASSERT_EQ(float_to_bf16(x), ref_to_bf16(x)) << std::hex << bits_of(x);
    }
  // Named cases: ties to even both ways, overflow to infinity, subnormals kept.
  EXPECT_EQ(float_to_bf16(from_bits(0x3f808000u)), 0x3f80);  // tie, even below
  EXPECT_EQ(float_to_bf16(from_bits(0x3f818000u)), 0x3f82);  // tie, even above
  EXPECT_EQ(float_to_bf16(from_bits(0x7f7fffffu)), 0x7f80);  // FLT_MAX -> +inf
  EXPECT_EQ(float_to_bf16(from_bits(0x7f7f7fffu)), 0x7f7f);
  EXPECT_EQ(float_to_bf16(from_bits(0x00010000u)), 0x0001);  // subnormal, not flushed
  EXPECT_EQ(float_to_bf16(from_bits(0x80008000u)), 0x8000);  // tie at -0
  EXPECT_EQ(float_to_bf16(from_bits(0x7f800001u)), 0x7fc0);  // payload only in the low bits: still NaN
  EXPECT_EQ(float_to_bf16(from_bits(0xffa00000u)), 0xffe0);  // signalling NaN made quiet, sign kept
}

TEST(DType, BulkConversionMatchesScalarAtAnyAlignment) {
  std::mt19937_64 rng = test::fresh_rng();
  for (int64_t n : {0, 1, 2, 3, 7, 8, 15, 16, 17, 63, 1000, 65537}) {
    std::vector<unsigned char> raw(size_t(n) * 4 + 3);
    for (auto& b : raw) b = static_cast<unsigned char>(rng());
    for (size_t shift : {0, 1, 3})
      for (DType t : {DType::F32, DType::BF16, DType::F16}) {
        const unsigned char* src = raw.data() + shift;
        std::vector<float> out(size_t(n) + 1, 12345.0f);
        convert_to_float(t, src, out.data(), n);
        for (int64_t i = 0; i < n; ++i) {
          uint32_t want;
          if (t == DType::F32) {
            std::memcpy(&want, src + 4 * i, 4);
          } else {
            const uint16_t h = uint16_t(src[2 * i] | (src[2 * i + 1] << 8));  // little-endian
            want = ref_widen(h, t == DType::BF16);
          }
          ASSERT_EQ(bits_of(out[size_t(i)]), want) << dtype_name(t) << " n=" << n << " i=" << i << " shift=" << shift;
        }
        EXPECT_EQ(out[size_t(n)], 12345.0f) << "wrote past the end";
      }
  }
}

// ---- files written by hand ----

void write_bytes(const fs::path& p, const std::string& bytes) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), std::streamsize(bytes.size()));
}

std::string le64(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[size_t(i)] = char((v >> (8 * i)) & 0xff);
  return s;
}

// A file: 8-byte length (the header's own unless `len` is given), header, data.
std::string craft(const std::string& header, const std::string& data, std::optional<uint64_t> len = std::nullopt) {
  return le64(len ? *len : header.size()) + header + data;
}

std::string open_error(const fs::path& p) {
  try {
    io::SafetensorsFile::open(p.string());
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

struct BadCase {
  const char* what;
  std::string file;
  std::vector<std::string> expect;  // substrings of the message
};

TEST(Safetensors, EveryValidationRuleNamesTheProblem) {
  test::TempDir dir;
  const std::string w8(8, '\x01');
  const std::string ok = R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  auto entry = [](const std::string& name, const std::string& dtype, const std::string& shape, const std::string& off) {
    return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":" + off + "}";
  };
  const std::vector<BadCase> cases = {
      {"shorter than the length field", std::string("\x02\0\0\0\0", 5), {"is 5 bytes, too short for a safetensors file"}},
      {"empty file", "", {"is 0 bytes, too short"}},
      {"length past the end", craft("{}", "", 1000), {"header length 1000 runs past the end of the file (2 bytes follow"}},
      {"length above the cap", craft("{}", "", 200000000), {"header length 200000000 exceeds the limit of 100000000 bytes"}},
      {"length 2^64-1", craft("{}", "", UINT64_MAX), {"header length 18446744073709551615 exceeds the limit"}},
      {"empty header", craft("", w8), {"header is not valid JSON"}},
      {"truncated JSON", craft(R"({"w":{"dtype":"F32")", ""), {"header is not valid JSON"}},
      {"not UTF-8", craft("{\"w\xff\":{}}", ""), {"header is not valid JSON (UTF-8)", "UTF-8"}},
      {"garbage after the object", craft(ok + "x", w8), {"header is not valid JSON"}},
      {"a list", craft("[1,2]", ""), {"header is an array, expected a JSON object"}},
      {"a number", craft("42", ""), {"header is a number, expected a JSON object"}},
      {"a string", craft("\"w\"", ""), {"header is a string, expected a JSON object"}},
      {"duplicate tensor", craft("{" + entry("w", "F32", "[1]", "[0,4]") + "," + entry("w", "F32", "[1]", "[4,8]") + "}", w8),
       {"tensor 'w' appears twice"}},
      {"duplicate __metadata__", craft(R"({"__metadata__":{},"__metadata__":{}})", ""), {"__metadata__ appears twice"}},
      {"duplicate key in an entry", craft(R"({"w":{"dtype":"F32","dtype":"F16","shape":[2],"data_offsets":[0,8]}})", w8),
       {"entry 'w' has the key 'dtype' twice"}},
      {"nested lists", craft("{" + entry("w", "F32", "[[2]]", "[0,8]") + "}", w8), {"lists nest deeper", "(in entry 'w')"}},
      {"nested objects", craft(R"({"w":{"dtype":{"a":1}}})", ""), {"objects nest deeper", "(in entry 'w')"}},
      {"entry not an object", craft(R"({"w":3})", ""), {"tensor 'w': entry is a number, expected an object with dtype, shape and data_offsets"}},
      {"empty name", craft("{" + entry("", "F32", "[2]", "[0,8]") + "}", w8), {"a tensor has an empty name"}},
      {"no dtype", craft(R"({"w":{"shape":[2],"data_offsets":[0,8]}})", w8), {"tensor 'w': entry has no dtype"}},
      {"no shape", craft(R"({"w":{"dtype":"F32","data_offsets":[0,8]}})", w8), {"tensor 'w': entry has no shape"}},
      {"no offsets", craft(R"({"w":{"dtype":"F32","shape":[2]}})", w8), {"tensor 'w': entry has no data_offsets"}},
      {"dtype not a string", craft(R"({"w":{"dtype":4,"shape":[1],"data_offsets":[0,4]}})", w8),
       {"tensor 'w': dtype is a number, expected F32, BF16, F16 or I64"}},
      {"unknown dtype", craft("{" + entry("w", "Q8", "[2]", "[0,8]") + "}", w8), {"tensor 'w': unknown dtype 'Q8', expected F32, BF16, F16 or I64"}},
      {"F64", craft("{" + entry("w", "F64", "[1]", "[0,8]") + "}", w8), {"tensor 'w': dtype F64 is not supported, expected F32, BF16, F16 or I64"}},
      {"I32", craft("{" + entry("step", "I32", "[2]", "[0,8]") + "}", w8), {"tensor 'step': dtype I32 is not supported"}},
      {"shape not a list", craft("{" + entry("w", "F32", "2", "[0,8]") + "}", w8), {"tensor 'w': shape is a number, expected a list"}},
      {"negative dimension", craft("{" + entry("w", "F32", "[2,-2]", "[0,8]") + "}", w8),
       {"tensor 'w': shape[1] is -2, expected a non-negative integer"}},
      {"fractional dimension", craft("{" + entry("w", "F32", "[2.5]", "[0,8]") + "}", w8), {"tensor 'w': shape[0] is 2.5, expected a non-negative integer"}},
      {"dimension of 2^63", craft("{" + entry("w", "F32", "[9223372036854775808]", "[0,8]") + "}", w8),
       {"shape[0] is 9223372036854775808, expected a non-negative integer below 2^63"}},
      {"rank 9", craft("{" + entry("w", "F32", "[1,1,1,1,1,1,1,1,2]", "[0,8]") + "}", w8), {"tensor 'w': shape has 9 dimensions, expected at most 8"}},
      {"element count overflows", craft("{" + entry("w", "F32", "[4294967296,4294967296,4294967296]", "[0,8]") + "}", w8),
       {"tensor 'w': shape (4294967296, 4294967296, 4294967296) is too large: its size in bytes overflows 64 bits"}},
      {"byte count overflows", craft("{" + entry("w", "F32", "[4611686018427387904]", "[0,8]") + "}", w8),
       {"tensor 'w': shape (4611686018427387904,) is too large"}},
      {"offsets not a pair", craft("{" + entry("w", "F32", "[2]", "[0]") + "}", w8), {"tensor 'w': data_offsets is [0], expected [begin, end]"}},
      {"negative offset", craft("{" + entry("w", "F32", "[2]", "[-8,0]") + "}", w8), {"tensor 'w': data_offsets is [-8,0], expected [begin, end]"}},
      {"offsets reversed", craft("{" + entry("w", "F32", "[2]", "[8,0]") + "}", w8), {"tensor 'w': data_offsets [8, 0] end before they begin"}},
      {"truncated data", craft(ok, std::string(4, '\0')),
       {"tensor 'w': data_offsets [0, 8] run past the end of the data section (4 bytes; file truncated?)"}},
      {"wrong extent", craft("{" + entry("w", "F32", "[3]", "[0,8]") + "}", w8),
       {"tensor 'w': data_offsets [0, 8] hold 8 bytes, expected 12 (shape (3,) of F32, 4 bytes each)"}},
      {"extent too large", craft("{" + entry("w", "F32", "[1]", "[0,8]") + "}", w8),
       {"tensor 'w': data_offsets [0, 8] hold 8 bytes, expected 4 (shape (1,) of F32, 4 bytes each)"}},
      {"wrong extent for the dtype", craft("{" + entry("w", "BF16", "[2,2]", "[0,4]") + "}", w8),
       {"hold 4 bytes, expected 8 (shape (2, 2) of BF16, 2 bytes each)"}},
      {"overlap", craft("{" + entry("a", "F32", "[2]", "[0,8]") + "," + entry("b", "F32", "[2]", "[4,12]") + "}", std::string(12, '\0')),
       {"tensors 'a' [0, 8] and 'b' [4, 12] overlap in the data section"}},
      {"one inside another", craft("{" + entry("big", "F32", "[4]", "[0,16]") + "," + entry("c", "F32", "[1]", "[12,16]") + "," +
                                   entry("b", "BF16", "[2]", "[4,8]") + "}", std::string(16, '\0')),
       {"tensors 'big' [0, 16] and 'b' [4, 8] overlap"}},
      {"same range twice", craft("{" + entry("a", "F32", "[2]", "[0,8]") + "," + entry("b", "F16", "[4]", "[0,8]") + "}", w8),
       {"overlap in the data section"}},
      {"metadata not an object", craft(R"({"__metadata__":["a"]})", ""), {"__metadata__ is an array, expected an object of strings"}},
      {"metadata value not a string", craft(R"({"__metadata__":{"format":"pt","epoch":3}})", ""),
       {"__metadata__ key 'epoch' has a number value, expected a string"}},
  };
  int i = 0;
  for (const BadCase& c : cases) {
    const fs::path p = dir / ("bad" + std::to_string(i++) + ".safetensors");
    write_bytes(p, c.file);
    const std::string msg = open_error(p);
    ASSERT_FALSE(msg.empty()) << c.what << ": accepted";
    EXPECT_EQ(msg.rfind("safetensors file '" + p.string() + "': ", 0), 0u) << c.what << ": " << msg;
    for (const std::string& s : c.expect) EXPECT_NE(msg.find(s), std::string::npos) << c.what << ": '" << s << "' not in: " << msg;
  }

  // Not a file at all.
  EXPECT_EQ(open_error(dir / "nope.safetensors"), "safetensors file '" + dir / "nope.safetensors" + "': no such file");
  EXPECT_NE(open_error(dir.path).find("is a directory, expected a safetensors file"), std::string::npos);
  // A long name is cut in the message.
  const std::string long_name(5000, 'n');
  write_bytes(dir / "long.safetensors", craft("{" + entry(long_name, "F64", "[1]", "[0,8]") + "}", w8));
  const std::string msg = open_error(dir / "long.safetensors");
  EXPECT_NE(msg.find("...' (5000 bytes): dtype F64 is not supported"), std::string::npos) << msg;
  EXPECT_LT(msg.size(), 400u);
}

TEST(Safetensors, LookupOfAnAbsentTensorNamesIt) {
  test::TempDir dir;
  const fs::path p = dir / "one.safetensors";
  write_bytes(p, craft(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", std::string(8, '\0')));
  const io::SafetensorsFile f = io::SafetensorsFile::open(p.string());
  EXPECT_TRUE(f.has("w"));
  EXPECT_FALSE(f.has("W"));
  for (auto call : {+[](const io::SafetensorsFile& f) { f.to_float("nope"); },
                    +[](const io::SafetensorsFile& f) { f.view("nope"); },
                    +[](const io::SafetensorsFile& f) { f.to_bf16("nope"); }}) {
    try {
      call(f);
      ADD_FAILURE() << "no error";
    } catch (const std::runtime_error& e) {
      EXPECT_EQ(std::string(e.what()), "safetensors file '" + p.string() + "': no tensor 'nope'");
    }
  }
}

// What other writers may do and the reader accepts: an unpadded header (unaligned data), gaps
// between tensors, bytes after the last one, keys it does not know, empty and scalar tensors,
// tensors listed out of offset order.
TEST(Safetensors, AcceptsUnalignedDataGapsAndUnknownKeys) {
  test::TempDir dir;
  const float a[3] = {1.5f, -2.25f, 3e-40f};  // the last one subnormal
  const uint16_t b[2] = {0x3c00, 0xfc00};    // F16 1, -inf
  const float s = 7.0f;
  std::string data(3, 'g');                                                    // gap at the start
  data.append(reinterpret_cast<const char*>(b), 4);                            // b at [3, 7]
  data.append(reinterpret_cast<const char*>(a), 12);                           // a at [7, 19]
  data.append(1, 'g');                                                         // gap
  data.append(reinterpret_cast<const char*>(&s), 4);                           // s at [20, 24]
  data.append("trailing");
  const std::string header =
      R"( {"a":{"shape":[3],"dtype":"F32","data_offsets":[7,19],"extra":"ignored"},)"
      R"("e":{"dtype":"BF16","shape":[0,5],"data_offsets":[7,7]},)"
      R"("__metadata__":{"format":"pt"},)"
      R"("s":{"dtype":"F32","shape":[],"data_offsets":[20,24]},)"
      R"("b":{"dtype":"F16","shape":[1,2],"data_offsets":[3,7]}})";
  ASSERT_NE(header.size() % 4, 0u);  // so that the data section is misaligned
  const fs::path p = dir / "loose.safetensors";
  write_bytes(p, craft(header, data));
  const io::SafetensorsFile f = io::SafetensorsFile::open(p.string());
  ASSERT_EQ(f.tensors().size(), 4u);
  const char* order[] = {"a", "e", "s", "b"};
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(f.tensors()[i].name, order[i]);
  EXPECT_EQ(f.metadata(), (std::map<std::string, std::string>{{"format", "pt"}}));
  EXPECT_EQ(f.data_start(), 8 + header.size());
  EXPECT_EQ(f.to_float("a"), std::vector<float>(a, a + 3));
  EXPECT_EQ(f.to_float("s"), std::vector<float>{7.0f});
  EXPECT_EQ(f.tensor("s").shape, std::vector<int64_t>{});
  EXPECT_EQ(f.tensor("s").numel(), 1);
  EXPECT_EQ(f.to_float("b"), (std::vector<float>{1.0f, -std::numeric_limits<float>::infinity()}));
  EXPECT_EQ(f.to_bf16("b"), (std::vector<uint16_t>{0x3f80, 0xff80}));
  EXPECT_EQ(f.to_float("e").size(), 0u);
  EXPECT_EQ(f.tensor("e").numel(), 0);
  const io::TensorView v = f.view("a");
  EXPECT_EQ(v.dtype, DType::F32);
  EXPECT_EQ(v.shape, std::vector<int64_t>{3});
  EXPECT_EQ(v.numel, 3);
  EXPECT_EQ(v.bytes, 12u);
  EXPECT_EQ(std::memcmp(v.data, a, 12), 0);
}

TEST(Safetensors, MappingStaysValidAfterMoveAndUnlink) {
  test::TempDir dir;
  const fs::path p = dir / "m.safetensors";
  const std::vector<float> x = {1, 2, 3, 4, 5};
  io::write_safetensors(p.string(), {{"x", DType::F32, {5}, x.data(), nullptr}});
  io::SafetensorsFile f = io::SafetensorsFile::open(p.string());
  io::SafetensorsFile g = std::move(f);
  fs::remove(p);
  EXPECT_EQ(g.to_float("x"), x);
  EXPECT_EQ(g.path(), p.string());
  // Move assignment unmaps the old file and takes the new one's mapping.
  const fs::path q = dir / "n.safetensors";
  io::write_safetensors(q.string(), {{"y", DType::BF16, {2}, x.data(), nullptr}});
  g = io::SafetensorsFile::open(q.string());
  EXPECT_FALSE(g.has("x"));
  EXPECT_EQ(g.to_float("y"), (std::vector<float>{1, 2}));
}

// ---- round trips through the writer ----

struct Expected {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  std::string bytes;  // on disk, by the test's own reckoning
};

TEST(Safetensors, RandomRoundTrips) {
  std::mt19937_64 rng = test::fresh_rng();
  test::TempDir dir;
  const char* odd_names[] = {"blocks.0.self_attn.q.weight", "quote\"back\\slash", "ünïcödé.名前", "tab\there", "__meta"};
  for (int round = 0; round < 60; ++round) {
    std::vector<std::vector<float>> values;
    std::vector<std::string> raws;
    std::vector<io::SafetensorsWriteTensor> in;
    std::vector<Expected> want;
    const int count = int(rng() % 7);
    values.reserve(size_t(count)), raws.reserve(size_t(count));
    for (int t = 0; t < count; ++t) {
      io::SafetensorsWriteTensor w;
      w.name = (rng() % 4 == 0 ? std::string(odd_names[rng() % 5]) : "t") + std::to_string(t);
      w.dtype = std::array<DType, 3>{DType::F32, DType::BF16, DType::F16}[rng() % 3];
      const int rank = int(rng() % 5);
      for (int d = 0; d < rank; ++d) w.shape.push_back(int64_t(rng() % 6));  // 0 included
      int64_t n = 1;
      for (int64_t d : w.shape) n *= d;
      if (round == 0 && t == 0) w.shape = {200003}, n = 200003;  // several of the writer's chunks
      Expected e{w.name, w.dtype, w.shape, {}};
      const bool from_values = w.dtype != DType::F16 && rng() % 2;
      if (from_values) {
        std::vector<float> v(static_cast<size_t>(n));
        const bool any_bits = rng() % 2;  // NaN, infinities, subnormals, ties
        for (auto& x : v) x = any_bits ? from_bits(uint32_t(rng())) : float(std::normal_distribution<double>(0, 3)(rng));
        for (float x : v) {
          if (w.dtype == DType::F32) {
            e.bytes.append(reinterpret_cast<const char*>(&x), 4);
          } else {
            const uint16_t h = ref_to_bf16(x);
            e.bytes.append(reinterpret_cast<const char*>(&h), 2);
          }
        }
        values.push_back(std::move(v));
        w.values = values.back().data();
      } else {
        std::string r(size_t(n) * dtype_size(w.dtype), '\0');
        for (auto& c : r) c = char(rng());
        e.bytes = r;
        raws.push_back(std::move(r));
        w.bytes = raws.back().data();
      }
      if (n == 0 && rng() % 2) w.values = nullptr, w.bytes = nullptr;  // no data needed
      in.push_back(w);
      want.push_back(e);
    }
    std::map<std::string, std::string> meta;
    for (int m = int(rng() % 3); m > 0; --m) meta["k" + std::to_string(rng() % 100)] = rng() % 2 ? "v" : "välue \"q\"";

    const fs::path p = dir / ("r" + std::to_string(round) + ".safetensors");
    io::write_safetensors(p.string(), in, meta, false);
    const io::SafetensorsFile f = io::SafetensorsFile::open(p.string());
    SCOPED_TRACE("round " + std::to_string(round));
    EXPECT_EQ(f.metadata(), meta);
    EXPECT_EQ(f.data_start() % 8, 0u);
    EXPECT_EQ(f.file_bytes(), fs::file_size(p));
    ASSERT_EQ(f.tensors().size(), want.size());
    uint64_t offset = 0;
    for (size_t t = 0; t < want.size(); ++t) {
      const Expected& e = want[t];
      const io::SafetensorsTensor& info = f.tensors()[t];
      ASSERT_EQ(info.name, e.name);
      ASSERT_TRUE(f.has(e.name));
      EXPECT_EQ(info.dtype, e.dtype) << e.name;
      EXPECT_EQ(info.shape, e.shape) << e.name;
      EXPECT_EQ(info.offset, offset) << e.name << ": tensors are contiguous in the order given";
      EXPECT_EQ(info.bytes, e.bytes.size()) << e.name;
      offset += info.bytes;
      const io::TensorView v = f.view(e.name);
      ASSERT_EQ(v.bytes, e.bytes.size());
      ASSERT_TRUE(e.bytes.empty() || std::memcmp(v.data, e.bytes.data(), e.bytes.size()) == 0) << e.name << ": bytes differ";
      // Element by element: float32 and bfloat16 readings against the references.
      const std::vector<float> fl = f.to_float(e.name);
      const std::vector<uint16_t> bf = f.to_bf16(e.name);
      ASSERT_EQ(int64_t(fl.size()), info.numel());
      ASSERT_EQ(bf.size(), fl.size());
      for (size_t i = 0; i < fl.size(); ++i) {
        uint32_t want_f;
        uint16_t want_b;
        if (e.dtype == DType::F32) {
          std::memcpy(&want_f, e.bytes.data() + 4 * i, 4);
          want_b = ref_to_bf16(from_bits(want_f));
        } else {
          uint16_t h;
          std::memcpy(&h, e.bytes.data() + 2 * i, 2);
          want_f = ref_widen(h, e.dtype == DType::BF16);
          want_b = e.dtype == DType::BF16 ? h : ref_to_bf16(from_bits(want_f));
        }
        ASSERT_EQ(bits_of(fl[i]), want_f) << e.name << "[" << i << "]";
        ASSERT_EQ(bf[i], want_b) << e.name << "[" << i << "]";
      }
    }
    // The header is padded with spaces up to the data section; nothing else is in the folder.
    std::ifstream file(p, std::ios::binary);
    std::string head(size_t(f.data_start()), '\0');
    file.read(head.data(), std::streamsize(head.size()));
    const size_t close = head.find_last_of('}');
    ASSERT_NE(close, std::string::npos);
    EXPECT_EQ(head.find_first_not_of(' ', close + 1), std::string::npos);
    EXPECT_LT(head.size() - close - 1, 8u);
  }
  size_t files = 0;
  for (const auto& entry : fs::directory_iterator(dir.path)) files += entry.path().extension() == ".safetensors";
  EXPECT_EQ(files, 60u);
  EXPECT_EQ(size_t(std::distance(fs::directory_iterator(dir.path), fs::directory_iterator())), 60u) << "temporaries left";
}

TEST(Safetensors, WriterRefusesBadTensorsAndLeavesNoFile) {
  test::TempDir dir;
  const std::string p = dir / "w.safetensors";
  const float x[4] = {1, 2, 3, 4};
  const uint16_t h[4] = {0, 0, 0, 0};
  using W = io::SafetensorsWriteTensor;
  struct Case {
    const char* what;
    std::vector<W> tensors;
    const char* expect;
  };
  const std::vector<Case> cases = {
      {"empty name", {{"", DType::F32, {4}, x, nullptr}}, "a tensor has an empty name"},
      {"reserved name", {{"__metadata__", DType::F32, {4}, x, nullptr}}, "a tensor cannot be named __metadata__"},
      {"duplicate", {{"a", DType::F32, {4}, x, nullptr}, {"a", DType::F32, {4}, x, nullptr}}, "tensor 'a': given twice"},
      {"negative dimension", {{"a", DType::F32, {2, -2}, x, nullptr}}, "tensor 'a': shape (2, -2) has a negative dimension"},
      {"rank 9", {{"a", DType::F32, {1, 1, 1, 1, 1, 1, 1, 1, 4}, x, nullptr}}, "tensor 'a': rank 9, expected at most 8"},
      {"no data", {{"a", DType::BF16, {4}, nullptr, nullptr}}, "tensor 'a': no data given"},
      {"both", {{"a", DType::BF16, {4}, x, h}}, "tensor 'a': both float values and bytes given"},
      {"F16 from floats", {{"a", DType::F16, {4}, x, nullptr}}, "tensor 'a': F16 from float values is not supported"},
      {"name not UTF-8", {{"a\xff", DType::F32, {4}, x, nullptr}}, "is not valid UTF-8"},
      {"too large", {{"a", DType::F32, {int64_t(1) << 62, 8}, x, nullptr}}, "tensor 'a': shape (4611686018427387904, 8) is too large"},
  };
  for (const Case& c : cases) {
    try {
      io::write_safetensors(p, c.tensors);
      ADD_FAILURE() << c.what << ": written";
    } catch (const std::runtime_error& e) {
      const std::string msg = e.what();
      EXPECT_EQ(msg.rfind("safetensors output '" + p + "': ", 0), 0u) << c.what << ": " << msg;
      EXPECT_NE(msg.find(c.expect), std::string::npos) << c.what << ": " << msg;
    }
    EXPECT_TRUE(fs::is_empty(dir.path)) << c.what << ": left a file";
  }
  // An existing file is kept unless overwriting is asked for.
  io::write_safetensors(p, {{"a", DType::F32, {4}, x, nullptr}});
  const std::vector<float> y = {9, 8};
  try {
    io::write_safetensors(p, {{"b", DType::F32, {2}, y.data(), nullptr}}, {}, false);
    ADD_FAILURE() << "replaced an existing file";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("already exists"), std::string::npos) << e.what();
  }
  EXPECT_EQ(io::SafetensorsFile::open(p).to_float("a"), std::vector<float>(x, x + 4));
  io::write_safetensors(p, {{"b", DType::F32, {2}, y.data(), nullptr}}, {}, true);
  const io::SafetensorsFile f = io::SafetensorsFile::open(p);
  EXPECT_FALSE(f.has("a"));
  EXPECT_EQ(f.to_float("b"), y);
  EXPECT_EQ(size_t(std::distance(fs::directory_iterator(dir.path), fs::directory_iterator())), 1u);
}

}  // namespace
}  // namespace ditgen
