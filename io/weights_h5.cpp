#include "io/weights_h5.h"

#include <hdf5.h>
#include <hdf5_hl.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <stdexcept>

#include "io/atomic_file.h"

namespace ditgen::io {

namespace {

// RAII for HDF5 identifiers.
struct Hid {
  hid_t id = -1;
  herr_t (*close)(hid_t) = nullptr;
  Hid(hid_t i, herr_t (*c)(hid_t)) : id(i), close(c) {}
  ~Hid() {
    if (id >= 0 && close) close(id);
  }
  Hid(const Hid&) = delete;
  Hid& operator=(const Hid&) = delete;
  operator hid_t() const { return id; }
};

void quiet_hdf5() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }

// 16-bit floats as HDF5 custom float types (HDF5 1.10 has no predefined half type):
// float16 = sign 15, exponent 10..14 (bias 15), mantissa 0..9;
// bfloat16 = sign 15, exponent 7..14 (bias 127), mantissa 0..6.
hid_t make_half_type(bool bfloat) {
  hid_t t = H5Tcopy(H5T_IEEE_F32LE);
  if (bfloat) {
    H5Tset_fields(t, 15, 7, 8, 0, 7);
  } else {
    H5Tset_fields(t, 15, 10, 5, 0, 10);
  }
  H5Tset_offset(t, 0);
  H5Tset_precision(t, 16);
  H5Tset_size(t, 2);
  H5Tset_ebias(t, bfloat ? 127 : 15);
  return t;
}

// True for the plain layouts of integers (1 to 8 bytes) and of float64, float32, float16 and
// bfloat16. Only these reach HDF5's conversion routines: a crafted precision, offset or field
// layout crashes libhdf5 1.10's converters (SIGBUS in H5T__bit_copy; tests/fuzz/fuzz_weights).
bool plain_number_type(hid_t t) {
  const H5T_class_t cls = H5Tget_class(t);
  const size_t size = H5Tget_size(t);
  if (H5Tget_offset(t) != 0 || H5Tget_precision(t) != 8 * size) return false;
  if (cls == H5T_INTEGER) return size == 1 || size == 2 || size == 4 || size == 8;
  if (cls != H5T_FLOAT || H5Tget_norm(t) != H5T_NORM_IMPLIED) return false;
  size_t spos = 0, epos = 0, esize = 0, mpos = 0, msize = 0;
  if (H5Tget_fields(t, &spos, &epos, &esize, &mpos, &msize) < 0 || mpos != 0 || spos != 8 * size - 1) return false;
  const size_t ebias = H5Tget_ebias(t);
  auto is = [&](size_t e, size_t m, size_t bias) { return esize == e && msize == m && epos == m && ebias == bias; };
  return (size == 8 && is(11, 52, 1023)) || (size == 4 && is(8, 23, 127)) ||
         (size == 2 && (is(5, 10, 15) || is(8, 7, 127)));
}

std::string describe_type(hid_t t) {
  if (H5Tget_class(t) != H5T_FLOAT) return "non-float";
  if (!plain_number_type(t)) return "an unusual float layout";
  const size_t size = H5Tget_size(t);
  if (size == 4) return "float32";
  if (size == 8) return "float64";
  if (size == 2) {
    size_t spos, epos, esize, mpos, msize;
    H5Tget_fields(t, &spos, &epos, &esize, &mpos, &msize);
    return esize == 8 ? "bfloat16" : "float16";
  }
  return "float" + std::to_string(size * 8);
}

[[noreturn]] void fail(const std::string& file, const std::string& msg) {
  throw std::runtime_error("weight file '" + file + "': " + msg);
}

bool read_attr_double(hid_t file, const char* name, double& out) {
  if (H5Aexists(file, name) <= 0) return false;
  Hid a(H5Aopen(file, name, H5P_DEFAULT), H5Aclose);
  if (a < 0) return false;
  Hid space(H5Aget_space(a), H5Sclose);
  if (H5Sget_simple_extent_npoints(space) != 1) return false;
  Hid type(H5Aget_type(a), H5Tclose);
  const H5T_class_t cls = H5Tget_class(type);
  if ((cls != H5T_INTEGER && cls != H5T_FLOAT) || !plain_number_type(type)) return false;
  return H5Aread(a, H5T_NATIVE_DOUBLE, &out) >= 0;
}

std::string read_attr_string(hid_t file, const char* name) {
  if (H5Aexists(file, name) <= 0) return {};
  Hid a(H5Aopen(file, name, H5P_DEFAULT), H5Aclose);
  Hid type(H5Aget_type(a), H5Tclose);
  if (H5Tget_class(type) != H5T_STRING) return {};
  if (H5Tis_variable_str(type) > 0) {
    char* s = nullptr;
    Hid mem(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(mem, H5T_VARIABLE);
    if (H5Aread(a, mem, &s) < 0 || !s) return {};
    std::string r(s);
    H5free_memory(s);
    return r;
  }
  const size_t n = H5Tget_size(type);
  if (n == 0 || n > 4096) return {};
  // One more byte than stored: a null-terminated memory type needs room for the terminator.
  std::string r(n + 1, '\0');
  Hid mem(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(mem, n + 1);
  if (H5Aread(a, mem, r.data()) < 0) return {};
  return r.substr(0, r.find('\0'));
}

herr_t collect_names(hid_t, const char* name, const H5L_info_t*, void* data) {
  static_cast<std::vector<std::string>*>(data)->push_back(name);
  return 0;
}

LoadedModel load_from_file_id(hid_t file, const std::string& label, bool read_data) {
  LoadedModel m;
  const std::string fmt = read_attr_string(file, "format");
  if (fmt != "ditgen") fail(label, "attribute 'format' is '" + fmt + "', expected 'ditgen'");
  double version = 0;
  if (!read_attr_double(file, "format_version", version)) fail(label, "attribute 'format_version' is missing");
  if (version != kFormatVersion) {
    std::ostringstream s;
    s << "format_version is " << version << ", this build reads version " << kFormatVersion;
    fail(label, s.str());
  }
  for (const auto& [key, def] : m.config.fields()) {
    double v = 0;
    if (!read_attr_double(file, key.c_str(), v)) fail(label, "config attribute '" + key + "' is missing or not a number");
    try {
      m.config.set_field(key, v);
    } catch (const std::exception& e) {
      fail(label, e.what());
    }
  }
  try {
    m.config.validate();
  } catch (const std::exception& e) {
    fail(label, e.what());
  }

  std::vector<std::string> names;
  H5Literate(file, H5_INDEX_NAME, H5_ITER_NATIVE, nullptr, collect_names, &names);
  std::set<std::string> present(names.begin(), names.end()), expected;

  auto table = m.weights.tensor_table(m.config);
  for (auto& e : table) {
    expected.insert(e.name);
    if (!present.count(e.name)) fail(label, "tensor '" + e.name + "' is missing (expected shape " + shape_string(e.shape) + ")");
    Hid ds(H5Dopen2(file, e.name.c_str(), H5P_DEFAULT), H5Dclose);
    if (ds < 0) fail(label, "'" + e.name + "' is not a dataset");
    Hid space(H5Dget_space(ds), H5Sclose);
    const int rank = H5Sget_simple_extent_ndims(space);
    std::vector<hsize_t> dims(size_t(rank > 0 ? rank : 0));
    if (rank > 0) H5Sget_simple_extent_dims(space, dims.data(), nullptr);
    std::vector<int64_t> shape(dims.begin(), dims.end());
    Hid type(H5Dget_type(ds), H5Tclose);
    const std::string dtype = describe_type(type);
    if (rank < 0 || shape != e.shape)
      fail(label, "tensor '" + e.name + "' has shape " + shape_string(shape) + ", expected " + shape_string(e.shape));
    if (dtype != "float32" && dtype != "float16" && dtype != "bfloat16" && dtype != "float64")
      fail(label, "tensor '" + e.name + "' has element type " + dtype + ", expected float32, float16 or bfloat16");
    m.tensors.push_back({e.name, shape, dtype});
    if (!read_data) continue;
    e.tensor->reset(e.shape);
    if (H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, e.tensor->data()) < 0)
      fail(label, "cannot read tensor '" + e.name + "' (file truncated or corrupt?)");
    for (int64_t i = 0; i < e.tensor->size(); ++i)
      if (!std::isfinite((*e.tensor)[i])) {
        std::ostringstream s;
        s << "tensor '" << e.name << "' has a non-finite value (" << (*e.tensor)[i] << ") at flat index " << i;
        fail(label, s.str());
      }
  }
  for (const auto& n : names)
    if (!expected.count(n)) m.warnings.push_back("ignoring dataset '" + n + "' that the config does not name");
  return m;
}

LoadedModel load_path(const std::string& path, bool read_data) {
  quiet_hdf5();
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) fail(path, "no such file");
  if (std::filesystem::is_directory(path, ec)) fail(path, "is a directory, expected an HDF5 file");
  if (H5Fis_hdf5(path.c_str()) <= 0) fail(path, "not an HDF5 file (or truncated)");
  Hid file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  if (file < 0) fail(path, "cannot open as HDF5 (truncated or corrupt?)");
  return load_from_file_id(file, path, read_data);
}

}  // namespace

DiskType parse_disk_type(const std::string& s) {
  if (s == "float32") return DiskType::Float32;
  if (s == "float16") return DiskType::Float16;
  if (s == "bfloat16") return DiskType::BFloat16;
  throw std::invalid_argument("unknown weight dtype '" + s + "': expected float32, float16 or bfloat16");
}

std::string disk_type_name(DiskType t) {
  return t == DiskType::Float32 ? "float32" : t == DiskType::Float16 ? "float16" : "bfloat16";
}

LoadedModel load_weights(const std::string& path) { return load_path(path, true); }
LoadedModel inspect_weights(const std::string& path) { return load_path(path, false); }

LoadedModel load_weights_from_memory(const void* data, size_t size) {
  quiet_hdf5();
  if (size == 0) fail("<memory>", "empty image");
  // The core driver with a copied image (H5LTopen_file_image with DONT_COPY leaks its
  // callback data in HDF5 1.10: found by tests/fuzz/fuzz_weights under LeakSanitizer).
  Hid fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
  if (fapl < 0 || H5Pset_fapl_core(fapl, 1 << 16, 0) < 0 || H5Pset_file_image(fapl, const_cast<void*>(data), size) < 0)
    fail("<memory>", "cannot set up an in-memory HDF5 file");
  Hid file(H5Fopen("ditgen-memory-image.h5", H5F_ACC_RDONLY, fapl), H5Fclose);
  if (file < 0) fail("<memory>", "not an HDF5 file image");
  return load_from_file_id(file, "<memory>", true);
}

void save_weights(const std::string& path, const DiTConfig& cfg, DiTWeights& weights, DiskType type, bool overwrite) {
  quiet_hdf5();
  cfg.validate();
  AtomicOutput out(path, overwrite);
  {
    Hid file(H5Fcreate(out.temp_path().c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose);
    if (file < 0) throw std::runtime_error("cannot create HDF5 file '" + out.temp_path() + "'");
    auto write_scalar = [&](const std::string& name, double v, bool integer) {
      Hid space(H5Screate(H5S_SCALAR), H5Sclose);
      const hid_t t = integer ? H5T_STD_I64LE : H5T_IEEE_F64LE;
      Hid a(H5Acreate2(file, name.c_str(), t, space, H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
      if (integer) {
        const int64_t iv = int64_t(v);
        H5Awrite(a, H5T_NATIVE_INT64, &iv);
      } else {
        H5Awrite(a, H5T_NATIVE_DOUBLE, &v);
      }
    };
    {
      Hid st(H5Tcopy(H5T_C_S1), H5Tclose);
      H5Tset_size(st, 6);
      Hid space(H5Screate(H5S_SCALAR), H5Sclose);
      Hid a(H5Acreate2(file, "format", st, space, H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
      H5Awrite(a, st, "ditgen");
    }
    write_scalar("format_version", kFormatVersion, true);
    const std::set<std::string> floats = {"eps", "rope_theta", "sample_shift", "sample_cfg"};
    for (const auto& [key, v] : cfg.fields()) write_scalar(key, v, !floats.count(key));

    Hid half(make_half_type(type == DiskType::BFloat16), H5Tclose);
    const hid_t disk = type == DiskType::Float32 ? H5T_IEEE_F32LE : hid_t(half);
    for (auto& e : weights.tensor_table(cfg)) {
      if (e.tensor->shape() != e.shape)
        throw std::invalid_argument("tensor '" + e.name + "' has shape " + shape_string(e.tensor->shape()) +
                                    ", expected " + shape_string(e.shape));
      std::vector<hsize_t> dims(e.shape.begin(), e.shape.end());
      Hid space(H5Screate_simple(int(dims.size()), dims.data(), nullptr), H5Sclose);
      Hid ds(H5Dcreate2(file, e.name.c_str(), disk, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Dclose);
      if (ds < 0 || H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, e.tensor->data()) < 0)
        throw std::runtime_error("cannot write tensor '" + e.name + "' to '" + path + "' (disk full?)");
    }
    if (H5Fflush(file, H5F_SCOPE_GLOBAL) < 0) throw std::runtime_error("cannot flush '" + path + "' (disk full?)");
  }
  out.commit();
}

}  // namespace ditgen::io
