#pragma once
// Body of the fuzz_safetensors harness: safetensors files (io/safetensors.h), which need only
// ditgen_io. Shared with the regression replay in tests/robustness_test.cpp, like harness.h.
// Returns "" when the contract held, else what broke; other exception types propagate.
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "io/safetensors.h"

namespace ditgen::fuzz {

// The 8-byte little-endian header length that starts a safetensors file.
inline std::string length_field(uint64_t n) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[size_t(i)] = char((n >> (8 * i)) & 0xff);
  return s;
}

// One safetensors file: SafetensorsFile::open on `bytes` written to a file; a refusal must be a
// std::runtime_error that starts with the file's name and stays short. An accepted file is
// checked against the format's rules independently of the reader, every tensor is read as
// float32 and bfloat16 and compared with the scalar conversions of its bytes, and the file is
// written again by write_safetensors, as it is (each tensor's bytes in its own dtype, and the
// metadata) and as float32 values; both copies must read back to identical bytes and values.
inline std::string safetensors_file_one(const std::string& bytes) {
  // A directory of this process's own, removed at exit (libFuzzer's fork mode starts many).
  static const struct ScratchDir {
    std::filesystem::path path =
        std::filesystem::temp_directory_path() / ("ditgen-fuzz-safetensors-" + std::to_string(::getpid()));
    ScratchDir() { std::filesystem::create_directories(path); }
    ~ScratchDir() {
      std::error_code ec;
      std::filesystem::remove_all(path, ec);
    }
  } scratch;
  const std::filesystem::path& dir = scratch.path;
  const std::string path = (dir / "in.safetensors").string();
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
  std::optional<io::SafetensorsFile> opened;
  try {
    opened.emplace(io::SafetensorsFile::open(path));
  } catch (const std::runtime_error& e) {
    const std::string msg = e.what(), prefix = "safetensors file '" + path + "': ";
    if (msg.rfind(prefix, 0) != 0) return "refusal does not start with the file's name: " + msg.substr(0, 300);
    if (msg.size() > prefix.size() + 600) return "refusal message of " + std::to_string(msg.size()) + " bytes";
    return "";
  }
  const io::SafetensorsFile& f = *opened;
  const auto& ts = f.tensors();
  const uint64_t data_bytes = f.file_bytes() - f.data_start();
  if (f.data_start() < 8 || f.data_start() > f.file_bytes()) return "data section starts outside the file";
  for (size_t i = 0; i < ts.size(); ++i) {
    const io::SafetensorsTensor& t = ts[i];
    if (t.name.empty() || !f.has(t.name) || &f.tensor(t.name) != &t) return "tensor " + std::to_string(i) + ": bad name or lookup";
    if (t.shape.size() > 8) return "tensor '" + t.name + "' of rank " + std::to_string(t.shape.size());
    uint64_t n = 1;
    bool zero = false;
    for (int64_t d : t.shape) zero |= d == 0;
    for (int64_t d : t.shape) {
      if (d < 0) return "tensor '" + t.name + "' with a negative dimension";
      if (!zero && __builtin_mul_overflow(n, uint64_t(d), &n)) return "tensor '" + t.name + "': accepted an overflowing shape";
    }
    if (zero) n = 0;
    if (int64_t(n) != t.numel() || t.bytes != n * dtype_size(t.dtype)) return "tensor '" + t.name + "': size does not match shape";
    if (t.offset > data_bytes || t.bytes > data_bytes - t.offset) return "tensor '" + t.name + "' beyond the data section";
    for (size_t j = 0; j < i; ++j) {
      const io::SafetensorsTensor& u = ts[j];
      if (u.name == t.name) return "tensor '" + t.name + "' twice";
      if (t.bytes && u.bytes && t.offset < u.offset + u.bytes && u.offset < t.offset + t.bytes)
        return "tensors '" + u.name + "' and '" + t.name + "' overlap";
    }
  }
  // Every tensor read both ways, against the scalar conversions of its bytes.
  std::vector<std::vector<float>> floats;
  for (const io::SafetensorsTensor& t : ts) {
    const io::TensorView v = f.view(t.name);
    const auto* raw = static_cast<const unsigned char*>(v.data);
    std::vector<float> x = f.to_float(t.name);
    const std::vector<uint16_t> b = f.to_bf16(t.name);
    if (int64_t(x.size()) != t.numel() || b.size() != x.size()) return "tensor '" + t.name + "' read with the wrong count";
    for (size_t i = 0; i < x.size(); ++i) {
      uint32_t fb;
      uint16_t h = 0;
      if (t.dtype == DType::F32) {
        std::memcpy(&fb, raw + 4 * i, 4);
      } else if (t.dtype == DType::I64) {
        int64_t v;
        std::memcpy(&v, raw + 8 * i, 8);
        fb = float_bits(float(v));
      } else {
        std::memcpy(&h, raw + 2 * i, 2);
        fb = float_bits(t.dtype == DType::BF16 ? bf16_to_float(h) : f16_to_float(h));
      }
      const uint16_t want_b = t.dtype == DType::BF16 ? h : float_to_bf16(bits_float(fb));
      if (float_bits(x[i]) != fb || b[i] != want_b) return "tensor '" + t.name + "' element " + std::to_string(i) + " misread";
    }
    floats.push_back(std::move(x));
  }
  // Written again: as it is, and as float32.
  std::vector<io::SafetensorsWriteTensor> same, as_f32;
  for (size_t i = 0; i < ts.size(); ++i) {
    same.push_back({ts[i].name, ts[i].dtype, ts[i].shape, nullptr, f.view(ts[i].name).data});
    as_f32.push_back({ts[i].name, DType::F32, ts[i].shape, floats[i].data(), nullptr});
  }
  const std::string copy = (dir / "copy.safetensors").string(), copy32 = (dir / "copy32.safetensors").string();
  try {
    io::write_safetensors(copy, same, f.metadata());
    io::write_safetensors(copy32, as_f32, f.metadata());
  } catch (const std::runtime_error& e) {
    return std::string("the writer refused what the reader accepted: ") + e.what();
  }
  for (const std::string& p : {copy, copy32}) {
    std::optional<io::SafetensorsFile> g;
    try {
      g.emplace(io::SafetensorsFile::open(p));
    } catch (const std::runtime_error& e) {
      return std::string("a rewritten file does not open: ") + e.what();
    }
    if (g->metadata() != f.metadata()) return "metadata changed in " + p;
    if (g->tensors().size() != ts.size()) return "tensor count changed in " + p;
    if (g->data_start() % 8) return "rewritten data section not 8-byte aligned";
    for (size_t i = 0; i < ts.size(); ++i) {
      const io::SafetensorsTensor& t = ts[i];
      const io::SafetensorsTensor& u = g->tensors()[i];
      if (u.name != t.name || u.shape != t.shape) return "tensor " + std::to_string(i) + " renamed or reshaped in " + p;
      const std::vector<float> y = g->to_float(t.name);
      if (y.size() != floats[i].size() || (!y.empty() && std::memcmp(y.data(), floats[i].data(), y.size() * 4)))
        return "tensor '" + t.name + "' reads back differently from " + p;
      if (p == copy && (u.dtype != t.dtype || (t.bytes && std::memcmp(g->view(t.name).data, f.view(t.name).data, t.bytes))))
        return "tensor '" + t.name + "' bytes changed in " + p;
    }
  }
  return "";
}

// A safetensors file whose header is built from `in` read as a description, so that the
// fuzzer reaches the header's meaning (dtypes, shapes, offsets, names, metadata) without having
// to keep the JSON well-formed. One byte each: the tensor count; per tensor a name (often one
// already used, empty, or __metadata__), a dtype (sometimes F64 or I8), a rank (up to 9), each
// dimension (mostly 0-4, sometimes 2^32, 2^62, 2^63-1, 2^64-1, -1 or 2.5), where it begins
// (after the previous one, at a small offset, on the previous one's start, or inside it) and
// whether its extent is off by one; then metadata (none, strings, or a number). The rest of the
// input is the data section.
inline std::string safetensors_described(const std::string& in) {
  size_t at = 0;
  auto next = [&]() -> unsigned { return at < in.size() ? static_cast<unsigned char>(in[at++]) : 0u; };
  static const char* const names[] = {"a", "b", "a", "", "__metadata__", "blocks.0.w"};
  static const char* const dtypes[] = {"F32", "BF16", "F16", "I64", "BF16", "F16", "F64", "I8"};
  static const unsigned dtype_bytes[] = {4, 2, 2, 8, 2, 2, 8, 1};
  static const char* const odd_dims[] = {"4294967296", "4611686018427387904", "9223372036854775807",
                                         "18446744073709551615", "-1", "2.5"};
  std::string header = "{";
  uint64_t pos = 0, prev_begin = 0;
  const unsigned count = next() % 6;
  for (unsigned t = 0; t < count; ++t) {
    const unsigned name = next() % 10;
    const unsigned dtype = next() % 8;
    const unsigned rank = next() % 10;
    std::string shape = "[";
    unsigned __int128 bytes = dtype_bytes[dtype];
    for (unsigned r = 0; r < rank; ++r) {
      const unsigned c = next();
      const std::string d = c < 250 ? std::to_string(c % 5) : odd_dims[(c - 250) % 6];
      shape += (r ? "," : "") + d;
      bytes *= d[0] == '-' || d.find('.') != std::string::npos ? 1 : std::stoull(d);
      if (bytes >> 64) bytes = ~uint64_t(0);
    }
    const unsigned where = next();
    uint64_t begin = where % 4 == 0 ? pos : where % 4 == 1 ? where / 4 : where % 4 == 2 ? prev_begin : pos - std::min<uint64_t>(pos, where / 4 % 8);
    uint64_t end = begin + uint64_t(bytes);
    const unsigned off = next();
    end += off % 16 == 1 ? 1 : 0;
    end -= off % 16 == 2 && end > 0 ? 1 : 0;
    header += (t ? "," : "") + nlohmann::json(name < 6 ? names[name] : "t" + std::to_string(t)).dump() + ":{\"dtype\":\"" +
              dtypes[dtype] + "\",\"shape\":" + shape + "],\"data_offsets\":[" + std::to_string(begin) + "," +
              std::to_string(end) + "]}";
    prev_begin = begin;
    pos = std::max(pos, end);
  }
  const unsigned meta = next() % 4;
  if (meta) header += std::string(count ? "," : "") + "\"__metadata__\":" + (meta == 1 ? "{\"k\":\"v\",\"format\":\"pt\"}" : meta == 2 ? "{\"k\":1}" : "[]");
  header += "}";
  return length_field(header.size()) + header + in.substr(at);
}

// The input read three ways: as a file; as a header up to its first NUL byte with the data
// section after that byte and the length field computed (edits of the JSON text need not also
// fix the length); and as a description of a header (safetensors_described).
inline std::string safetensors_one(const uint8_t* data, size_t size) {
  if (size > 65536) return "";
  const std::string in(reinterpret_cast<const char*>(data), size);
  std::string r = safetensors_file_one(in);
  if (!r.empty()) return r;
  const size_t nul = std::min(in.find('\0'), in.size());
  r = safetensors_file_one(length_field(nul) + in.substr(0, nul) + (nul < in.size() ? in.substr(nul + 1) : std::string()));
  if (!r.empty()) return r;
  return safetensors_file_one(safetensors_described(in));
}

}  // namespace ditgen::fuzz
