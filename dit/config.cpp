#include "dit/config.h"

#include <cmath>
#include <sstream>
#include <stdexcept>

#include "core/tensor.h"

namespace ditgen {

namespace {
void require_range(const char* name, double v, double lo, double hi) {
  if (!(v >= lo && v <= hi)) {
    std::ostringstream s;
    s << "config " << name << " = " << v << " is out of range: expected " << lo << " to " << hi;
    throw std::invalid_argument(s.str());
  }
}
}  // namespace

void DiTConfig::validate() const {
  require_range("in_channels", in_channels, 1, 64);
  require_range("patch_t", patch_t, 1, 16);
  require_range("patch_h", patch_h, 1, 64);
  require_range("patch_w", patch_w, 1, 64);
  require_range("dim", dim, 1, 16384);
  require_range("ffn_dim", ffn_dim, 1, 131072);
  require_range("num_heads", num_heads, 1, 256);
  require_range("num_layers", num_layers, 1, 1024);
  require_range("freq_dim", freq_dim, 2, 8192);
  require_range("ctx_len", ctx_len, 1, 4096);
  require_range("ctx_dim", ctx_dim, 1, 16384);
  require_range("num_classes", num_classes, 0, 100000);
  require_range("eps", eps, 1e-12, 1e-1);
  require_range("rope_theta", rope_theta, 1.0, 1e9);
  require_range("sample_shift", sample_shift, 0.01, 100.0);
  require_range("sample_steps", sample_steps, 1, 10000);
  require_range("sample_cfg", sample_cfg, 0.0, 100.0);
  require_range("frame_height", frame_height, 1, 16384);
  require_range("frame_width", frame_width, 1, 16384);
  if (dim % num_heads != 0) {
    std::ostringstream s;
    s << "config dim = " << dim << " is not divisible by num_heads = " << num_heads;
    throw std::invalid_argument(s.str());
  }
  if (head_dim() % 2 != 0 || head_dim() < 6) {
    std::ostringstream s;
    s << "config head dim = dim/num_heads = " << head_dim() << " must be even and at least 6 (3D RoPE)";
    throw std::invalid_argument(s.str());
  }
  if (freq_dim % 2 != 0) {
    std::ostringstream s;
    s << "config freq_dim = " << freq_dim << " must be even";
    throw std::invalid_argument(s.str());
  }
}

std::vector<std::pair<std::string, double>> DiTConfig::fields() const {
  return {{"in_channels", in_channels}, {"patch_t", patch_t},       {"patch_h", patch_h},
          {"patch_w", patch_w},         {"dim", dim},               {"ffn_dim", ffn_dim},
          {"num_heads", num_heads},     {"num_layers", num_layers}, {"freq_dim", freq_dim},
          {"ctx_len", ctx_len},         {"ctx_dim", ctx_dim},       {"num_classes", num_classes},
          {"eps", eps},                 {"rope_theta", rope_theta}, {"sample_shift", sample_shift},
          {"sample_steps", sample_steps}, {"sample_cfg", sample_cfg},
          {"frame_height", frame_height}, {"frame_width", frame_width}};
}

bool DiTConfig::set_field(const std::string& name, double v) {
  auto as_int = [&](int& f) {
    if (!std::isfinite(v) || v != std::floor(v) || std::fabs(v) > 2e9) {
      std::ostringstream s;
      s << "config " << name << " = " << v << " must be an integer";
      throw std::invalid_argument(s.str());
    }
    f = static_cast<int>(v);
    return true;
  };
  if (name == "in_channels") return as_int(in_channels);
  if (name == "patch_t") return as_int(patch_t);
  if (name == "patch_h") return as_int(patch_h);
  if (name == "patch_w") return as_int(patch_w);
  if (name == "dim") return as_int(dim);
  if (name == "ffn_dim") return as_int(ffn_dim);
  if (name == "num_heads") return as_int(num_heads);
  if (name == "num_layers") return as_int(num_layers);
  if (name == "freq_dim") return as_int(freq_dim);
  if (name == "ctx_len") return as_int(ctx_len);
  if (name == "ctx_dim") return as_int(ctx_dim);
  if (name == "num_classes") return as_int(num_classes);
  if (name == "sample_steps") return as_int(sample_steps);
  if (name == "frame_height") return as_int(frame_height);
  if (name == "frame_width") return as_int(frame_width);
  if (name == "eps") return eps = v, true;
  if (name == "rope_theta") return rope_theta = v, true;
  if (name == "sample_shift") return sample_shift = v, true;
  if (name == "sample_cfg") return sample_cfg = v, true;
  return false;
}

void DiTConfig::validate(const LatentShape& shape) const {
  const DiTConfig& cfg = *this;
  const int frames = shape.frames, height = shape.height, width = shape.width;
  auto check = [](const char* what, int v, int patch, const char* pname) {
    if (v < 1) {
      std::ostringstream s;
      s << what << " = " << v << " must be at least 1";
      throw std::invalid_argument(s.str());
    }
    if (v % patch != 0) {
      std::ostringstream s;
      s << what << " = " << v << " is not divisible by the model's " << pname << " = " << patch;
      throw std::invalid_argument(s.str());
    }
  };
  check("frames", frames, cfg.patch_t, "patch_t");
  check("height", height, cfg.patch_h, "patch_h");
  check("width", width, cfg.patch_w, "patch_w");
}

}  // namespace ditgen
