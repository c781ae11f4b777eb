#include "io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>

#include "io/atomic_file.h"

namespace ditgen::io {

namespace {

using json = nlohmann::ordered_json;

const char* const kExpectedDtypes = "expected F32, BF16, F16 or I64";

// Names come from the file: quoted, and cut (at a UTF-8 character boundary) if long.
std::string quote_name(const std::string& s) {
  constexpr size_t kMax = 120;
  if (s.size() <= kMax) return "'" + s + "'";
  size_t cut = kMax;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xc0) == 0x80) --cut;
  return "'" + s.substr(0, cut) + "...' (" + std::to_string(s.size()) + " bytes)";
}

// A value from the file as JSON text, cut if long.
std::string short_dump(const json& j) {
  const std::string s = j.dump();
  return s.size() <= 60 ? s : s.substr(0, 60) + "...";
}

std::string a_type(const json& j) {
  const std::string t = j.type_name();
  return (t == "array" || t == "object" ? "an " : "a ") + t;
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + (shape.size() == 1 ? ",)" : ")");
}

// Element count of `shape`, or false if it does not fit in int64 (a zero dimension makes any
// shape empty, whatever the others are).
bool shape_numel(const std::vector<int64_t>& shape, int64_t* numel) {
  int64_t n = 1;
  for (int64_t d : shape)
    if (d == 0) {
      *numel = 0;
      return true;
    }
  for (int64_t d : shape)
    if (__builtin_mul_overflow(n, d, &n)) return false;
  *numel = n;
  return true;
}

// Dtypes of the safetensors format that this reader refuses by name.
bool known_unsupported_dtype(const std::string& s) {
  static const std::set<std::string> others = {"BOOL", "U8",  "I8",  "U16", "I16",     "U32",     "I32",
                                               "U64",  "F64", "F8_E4M3", "F8_E5M2", "F8_E8M0", "F4"};
  return others.count(s) != 0;
}

// Thrown from the parse callback to stop at the first structural problem.
struct HeaderShapeError {
  std::string what;
};

}  // namespace

int64_t SafetensorsTensor::numel() const {
  int64_t n = 0;
  shape_numel(shape, &n);
  return n;
}

SafetensorsFile::SafetensorsFile(SafetensorsFile&& o) noexcept { *this = std::move(o); }

SafetensorsFile& SafetensorsFile::operator=(SafetensorsFile&& o) noexcept {
  if (this != &o) {
    unmap();
    path_ = std::move(o.path_);
    map_ = o.map_;
    size_ = o.size_;
    data_start_ = o.data_start_;
    tensors_ = std::move(o.tensors_);
    index_ = std::move(o.index_);
    metadata_ = std::move(o.metadata_);
    o.map_ = nullptr;
    o.size_ = 0;
  }
  return *this;
}

SafetensorsFile::~SafetensorsFile() { unmap(); }

void SafetensorsFile::unmap() {
  if (map_) ::munmap(const_cast<unsigned char*>(map_), size_t(size_));
  map_ = nullptr;
}

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  const std::string where = "safetensors file '" + path + "': ";
  auto fail = [&](const std::string& what) { throw std::runtime_error(where + what); };

  SafetensorsFile f;
  f.path_ = path;
  {
    // O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused below).
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) fail(errno == ENOENT ? std::string("no such file") : std::string("cannot open: ") + std::strerror(errno));
    struct stat st;
    const int stat_rc = ::fstat(fd, &st);
    const int stat_errno = errno;
    if (stat_rc != 0 || !S_ISREG(st.st_mode) || st.st_size < 8) {
      ::close(fd);
      if (stat_rc != 0) fail(std::string("cannot stat: ") + std::strerror(stat_errno));
      if (S_ISDIR(st.st_mode)) fail("is a directory, expected a safetensors file");
      if (!S_ISREG(st.st_mode)) fail("is not a regular file");
      fail("is " + std::to_string(st.st_size) + " bytes, too short for a safetensors file (8-byte header length, then the header)");
    }
    void* m = ::mmap(nullptr, size_t(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
    const int map_errno = errno;
    ::close(fd);
    if (m == MAP_FAILED) fail(std::string("cannot map into memory: ") + std::strerror(map_errno));
    f.map_ = static_cast<const unsigned char*>(m);
    f.size_ = uint64_t(st.st_size);
  }

  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | f.map_[i];
  if (header_len > kSafetensorsMaxHeaderBytes)
    fail("header length " + std::to_string(header_len) + " exceeds the limit of " +
         std::to_string(kSafetensorsMaxHeaderBytes) + " bytes (not a safetensors file, or corrupt)");
  if (header_len > f.size_ - 8)
    fail("header length " + std::to_string(header_len) + " runs past the end of the file (" +
         std::to_string(f.size_ - 8) + " bytes follow the length field; truncated?)");
  f.data_start_ = 8 + header_len;
  const uint64_t data_bytes = f.size_ - f.data_start_;

  // Parse, refusing duplicate keys (the JSON library would keep the last) and any nesting
  // deeper than an object of objects of lists.
  json header;
  {
    std::vector<std::set<std::string>> open_objects;
    std::string top_key;
    auto in_entry = [&] { return top_key.empty() ? std::string() : " (in entry " + quote_name(top_key) + ")"; };
    auto cb = [&](int depth, json::parse_event_t ev, json& parsed) -> bool {
      switch (ev) {
        case json::parse_event_t::object_start:
          if (depth > 1) throw HeaderShapeError{"objects nest deeper than in a safetensors header" + in_entry()};
          open_objects.emplace_back();
          break;
        case json::parse_event_t::object_end:
          open_objects.pop_back();
          break;
        case json::parse_event_t::array_start:
          if (depth > 2) throw HeaderShapeError{"lists nest deeper than in a safetensors header" + in_entry()};
          break;
        case json::parse_event_t::key: {
          const std::string& k = parsed.get_ref<const std::string&>();
          if (depth == 1) top_key = k;
          if (!open_objects.back().insert(k).second)
            throw HeaderShapeError{depth == 1 ? (k == "__metadata__" ? std::string("__metadata__ appears twice")
                                                                     : "tensor " + quote_name(k) + " appears twice")
                                              : "entry " + quote_name(top_key) + " has the key " + quote_name(k) + " twice"};
          break;
        }
        default:
          break;
      }
      return true;
    };
    const unsigned char* begin = f.map_ + 8;
    try {
      header = json::parse(begin, begin + header_len, cb);
    } catch (const HeaderShapeError& e) {
      fail("header: " + e.what);
    } catch (const json::exception& e) {
      std::string msg = e.what();
      const size_t close = msg.find("] ");
      if (msg.rfind("[json.exception.", 0) == 0 && close != std::string::npos) msg = msg.substr(close + 2);
      if (msg.size() > 200) msg = msg.substr(0, 200) + "...";  // it quotes the token read, of any length
      fail("header is not valid JSON (UTF-8): " + msg);
    }
  }
  if (!header.is_object()) fail("header is " + a_type(header) + ", expected a JSON object");

  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const json& e = it.value();
    if (name == "__metadata__") {
      if (!e.is_object()) fail("__metadata__ is " + a_type(e) + ", expected an object of strings");
      for (auto m = e.begin(); m != e.end(); ++m) {
        if (!m.value().is_string())
          fail("__metadata__ key " + quote_name(m.key()) + " has " + a_type(m.value()) + " value, expected a string");
        f.metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string tw = "tensor " + quote_name(name) + ": ";
    if (name.empty()) fail("a tensor has an empty name");
    if (!e.is_object()) fail(tw + "entry is " + a_type(e) + ", expected an object with dtype, shape and data_offsets");
    for (const char* field : {"dtype", "shape", "data_offsets"})
      if (!e.contains(field)) fail(tw + "entry has no " + field);

    SafetensorsTensor t;
    t.name = name;
    const json& dt = e["dtype"];
    if (!dt.is_string()) fail(tw + "dtype is " + a_type(dt) + ", " + kExpectedDtypes);
    const std::string ds = dt.get<std::string>();
    const auto parsed = parse_dtype(ds);
    if (!parsed) {
      if (known_unsupported_dtype(ds)) fail(tw + "dtype " + ds + " is not supported, " + kExpectedDtypes);
      fail(tw + "unknown dtype " + quote_name(ds) + ", " + kExpectedDtypes);
    }
    t.dtype = *parsed;

    const json& sh = e["shape"];
    if (!sh.is_array()) fail(tw + "shape is " + a_type(sh) + ", expected a list of non-negative integers");
    if (sh.size() > size_t(kSafetensorsMaxRank))
      fail(tw + "shape has " + std::to_string(sh.size()) + " dimensions, expected at most " + std::to_string(kSafetensorsMaxRank));
    for (size_t i = 0; i < sh.size(); ++i) {
      const json& d = sh[i];
      if (d.is_number_unsigned() && d.get<uint64_t>() <= uint64_t(INT64_MAX)) {
        t.shape.push_back(int64_t(d.get<uint64_t>()));
        continue;
      }
      fail(tw + "shape[" + std::to_string(i) + "] is " + short_dump(d) + ", expected a non-negative integer below 2^63");
    }
    int64_t numel = 0;
    if (!shape_numel(t.shape, &numel) || uint64_t(numel) > UINT64_MAX / dtype_size(t.dtype))
      fail(tw + "shape " + shape_text(t.shape) + " is too large: its size in bytes overflows 64 bits");
    const uint64_t expected = uint64_t(numel) * dtype_size(t.dtype);

    const json& off = e["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      fail(tw + "data_offsets is " + short_dump(off) + ", expected [begin, end], two non-negative integers");
    const uint64_t b = off[0].get<uint64_t>(), end = off[1].get<uint64_t>();
    const std::string range = "data_offsets [" + std::to_string(b) + ", " + std::to_string(end) + "]";
    if (b > end) fail(tw + range + " end before they begin");
    if (end > data_bytes)
      fail(tw + range + " run past the end of the data section (" + std::to_string(data_bytes) +
           " bytes; file truncated?)");
    if (end - b != expected)
      fail(tw + range + " hold " + std::to_string(end - b) + " bytes, expected " + std::to_string(expected) + " (shape " +
           shape_text(t.shape) + " of " + dtype_name(t.dtype) + ", " + std::to_string(dtype_size(t.dtype)) +
           " bytes each)");
    t.offset = b;
    t.bytes = end - b;
    f.index_.emplace(name, f.tensors_.size());
    f.tensors_.push_back(std::move(t));
  }

  // No two tensors may share a byte (empty ones occupy none): sorted by start, each must begin
  // at or after the end of the one before.
  std::vector<const SafetensorsTensor*> by_start;
  for (const auto& t : f.tensors_)
    if (t.bytes) by_start.push_back(&t);
  std::sort(by_start.begin(), by_start.end(), [](auto* a, auto* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < by_start.size(); ++i) {
    const SafetensorsTensor *a = by_start[i - 1], *b = by_start[i];
    if (b->offset < a->offset + a->bytes) {
      auto r = [](const SafetensorsTensor* x) {
        return quote_name(x->name) + " [" + std::to_string(x->offset) + ", " + std::to_string(x->offset + x->bytes) + "]";
      };
      fail("tensors " + r(a) + " and " + r(b) + " overlap in the data section");
    }
  }
  return f;
}

const SafetensorsTensor& SafetensorsFile::tensor(const std::string& name) const {
  const auto it = index_.find(name);
  if (it == index_.end()) throw std::runtime_error("safetensors file '" + path_ + "': no tensor " + quote_name(name));
  return tensors_[it->second];
}

TensorView SafetensorsFile::view(const std::string& name) const {
  const SafetensorsTensor& t = tensor(name);
  return TensorView{map_ + data_start_ + t.offset, t.dtype, t.shape, t.numel(), t.bytes};
}

void SafetensorsFile::read_float(const std::string& name, float* dst) const {
  const TensorView v = view(name);
  convert_to_float(v.dtype, v.data, dst, v.numel);
}

std::vector<float> SafetensorsFile::to_float(const std::string& name) const {
  std::vector<float> out(size_t(tensor(name).numel()));
  read_float(name, out.data());
  return out;
}

void SafetensorsFile::drop_pages(const std::string& name) const {
  const SafetensorsTensor& t = tensor(name);
  const uint64_t page = uint64_t(::sysconf(_SC_PAGESIZE));
  const uint64_t begin = (data_start_ + t.offset + page - 1) / page * page, end = (data_start_ + t.offset + t.bytes) / page * page;
  // Advice only: a failure leaves the pages resident, which costs memory, not correctness.
  if (end > begin) ::madvise(const_cast<unsigned char*>(map_) + begin, size_t(end - begin), MADV_DONTNEED);
}

void SafetensorsFile::read_bf16(const std::string& name, uint16_t* dst) const {
  const TensorView v = view(name);
  const unsigned char* s = static_cast<const unsigned char*>(v.data);
  switch (v.dtype) {
    case DType::BF16:
      if (v.bytes) std::memcpy(dst, s, size_t(v.bytes));
      return;
    case DType::F32:
      for (int64_t i = 0; i < v.numel; ++i) {
        float x;
        std::memcpy(&x, s + 4 * i, 4);
        dst[i] = float_to_bf16(x);
      }
      return;
    case DType::F16:
      for (int64_t i = 0; i < v.numel; ++i) {
        uint16_t h;
        std::memcpy(&h, s + 2 * i, 2);
        dst[i] = float_to_bf16(f16_to_float(h));
      }
      return;
    case DType::I64:
      for (int64_t i = 0; i < v.numel; ++i) {
        float x;
        convert_to_float(DType::I64, s + 8 * i, &x, 1);
        dst[i] = float_to_bf16(x);
      }
      return;
  }
}

std::vector<uint16_t> SafetensorsFile::to_bf16(const std::string& name) const {
  std::vector<uint16_t> out(size_t(tensor(name).numel()));
  read_bf16(name, out.data());
  return out;
}

namespace {

void write_all(int fd, const void* p, size_t n, const std::string& path) {
  const char* c = static_cast<const char*>(p);
  while (n > 0) {
    const ssize_t w = ::write(fd, c, std::min<size_t>(n, size_t(1) << 30));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) throw std::runtime_error("cannot write '" + path + "' (disk full?): " + std::strerror(w < 0 ? errno : ENOSPC));
    c += w;
    n -= size_t(w);
  }
}

}  // namespace

void write_safetensors(const std::string& path, const std::vector<SafetensorsWriteTensor>& tensors,
                       const std::map<std::string, std::string>& metadata, bool overwrite) {
  const std::string where = "safetensors output '" + path + "': ";
  auto fail = [&](const std::string& what) { throw std::runtime_error(where + what); };

  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::set<std::string> names;
  std::vector<uint64_t> sizes;
  uint64_t offset = 0;
  for (const auto& t : tensors) {
    const std::string tw = "tensor " + quote_name(t.name) + ": ";
    if (t.name.empty()) fail("a tensor has an empty name");
    if (t.name == "__metadata__") fail("a tensor cannot be named __metadata__");
    if (!names.insert(t.name).second) fail(tw + "given twice");
    if (t.shape.size() > size_t(kSafetensorsMaxRank))
      fail(tw + "rank " + std::to_string(t.shape.size()) + ", expected at most " + std::to_string(kSafetensorsMaxRank));
    for (int64_t d : t.shape)
      if (d < 0) fail(tw + "shape " + shape_text(t.shape) + " has a negative dimension");
    int64_t numel = 0;
    if (!shape_numel(t.shape, &numel) || uint64_t(numel) > UINT64_MAX / 4)
      fail(tw + "shape " + shape_text(t.shape) + " is too large: its size in bytes overflows 64 bits");
    if (t.values && t.bytes) fail(tw + "both float values and bytes given, expected one");
    if (numel > 0 && !t.values && !t.bytes) fail(tw + "no data given");
    if (t.values && (t.dtype == DType::F16 || t.dtype == DType::I64))
      fail(tw + dtype_name(t.dtype) + " from float values is not supported, give its bytes");
    const uint64_t bytes = uint64_t(numel) * dtype_size(t.dtype);
    if (__builtin_add_overflow(offset, bytes, &offset)) fail("the tensors hold more bytes than fit in 64 bits");
    header[t.name] = {{"dtype", dtype_name(t.dtype)}, {"shape", t.shape}, {"data_offsets", {offset - bytes, offset}}};
    sizes.push_back(bytes);
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const json::exception&) {
    fail("a tensor name or metadata string is not valid UTF-8");
  }
  text.append((8 - text.size() % 8) % 8, ' ');  // data section at a multiple of 8 bytes
  unsigned char len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(uint64_t(text.size()) >> (8 * i));

  AtomicOutput out(path, overwrite);
  const int fd = ::open(out.temp_path().c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0) fail(std::string("cannot create a temporary file: ") + std::strerror(errno));
  try {
    write_all(fd, len, 8, path);
    write_all(fd, text.data(), text.size(), path);
    for (size_t i = 0; i < tensors.size(); ++i) {
      const auto& t = tensors[i];
      if (sizes[i] == 0) continue;
      if (t.bytes || t.dtype == DType::F32) {
        write_all(fd, t.bytes ? t.bytes : static_cast<const void*>(t.values), size_t(sizes[i]), path);
        continue;
      }
      // float32 values rounded to bfloat16, a chunk at a time.
      std::vector<uint16_t> chunk;
      const int64_t n = int64_t(sizes[i] / 2), step = int64_t(1) << 16;
      for (int64_t s = 0; s < n; s += step) {
        const int64_t m = std::min(step, n - s);
        chunk.resize(size_t(m));
        for (int64_t j = 0; j < m; ++j) chunk[size_t(j)] = float_to_bf16(t.values[s + j]);
        write_all(fd, chunk.data(), size_t(m) * 2, path);
      }
    }
  } catch (...) {
    ::close(fd);
    throw;
  }
  if (::close(fd) != 0) fail(std::string("cannot finish writing (disk full?): ") + std::strerror(errno));
  out.commit();
}

}  // namespace ditgen::io
