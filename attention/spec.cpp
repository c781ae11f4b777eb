#include "attention/spec.h"

#include <sstream>
#include <stdexcept>

#include "attention/methods/methods.h"
#include "attention/sparse/sparse_backend.h"

namespace ditgen::attn {

AttnSpec parse_spec(const std::string& text) {
  AttnSpec s;
  const size_t colon = text.find(':');
  s.name = text.substr(0, colon);
  if (s.name.empty()) throw std::invalid_argument("attention spec '" + text + "' has no method name");
  if (colon == std::string::npos) return s;
  std::stringstream rest(text.substr(colon + 1));
  std::string item;
  while (std::getline(rest, item, ',')) {
    const size_t eq = item.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == item.size())
      throw std::invalid_argument("attention spec '" + text + "': '" + item + "' is not key=value");
    const std::string key = item.substr(0, eq);
    if (s.params.count(key)) throw std::invalid_argument("attention spec '" + text + "': key '" + key + "' given twice");
    s.params[key] = item.substr(eq + 1);
  }
  return s;
}

std::unique_ptr<AttentionBackend> make_dense(const AttnSpec& spec, const KernelOptions& opt) {
  KeySet keys("dense", spec);
  const int block = keys.integer("block", 64, 1, 1024);
  KernelOptions o = opt;
  o.isa = read_isa(keys, opt.isa);
  keys.finish();
  return std::make_unique<DenseBackend>(block, o);
}

const std::vector<MethodInfo>& methods() {
  static const std::vector<MethodInfo> list = {
      {"dense", "exact attention over every block", &make_dense},
      {"radial", "Radial Attention's static energy-decay mask (frame-major, 128-block shrink rule)", &make_radial},
      {"radial3d", "radial decay with a 3D spatial window in tile units", &make_radial3d},
      {"window", "3D sliding tile window (STA/NATTEN) plus first-frame sink and optional tile summaries", &make_window},
      {"svg", "Sparse VideoGen: per-head spatial or temporal band chosen by online profiling", &make_svg},
      {"topp", "dynamic key blocks reaching softmax mass p from mean-pooled q and k blocks", &make_topp},
      {"paro", "PAROAttention: per-head axis order and static block mask from `ditgen calibrate`", &make_paro},
  };
  return list;
}

std::unique_ptr<AttentionBackend> make_backend(const std::string& text, const KernelOptions& opt) {
  const AttnSpec s = parse_spec(text);
  std::string known;
  for (const MethodInfo& m : methods()) {
    if (m.name == s.name) return m.make(s, opt);
    known += (known.empty() ? "" : ", ") + m.name;
  }
  throw std::invalid_argument("unknown attention method '" + s.name + "' (known: " + known + ")");
}

}  // namespace ditgen::attn
