// LoRA merging (lora.h).
#include "dit/lora.h"

#include <Eigen/Core>
#include <cmath>
#include <map>
#include <stdexcept>

#include "core/numbers.h"

namespace ditgen {

namespace {

using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

[[noreturn]] void bad(const LoraAdapter& a, const LoraLayer& l, const std::string& why) {
  throw std::invalid_argument("LoRA '" + a.path + "': '" + l.source + "': " + why);
}

}  // namespace

std::pair<std::string, double> parse_lora_flag(const std::string& text) {
  const size_t colon = text.rfind(':');
  if (colon == std::string::npos) {
    if (text.empty()) throw std::invalid_argument("--lora '': expected FILE or FILE:SCALE");
    return {text, 1.0};
  }
  const std::string path = text.substr(0, colon), value = text.substr(colon + 1);
  const auto scale = parse_finite(value);
  if (path.empty() || !scale)
    throw std::invalid_argument("--lora '" + text + "': expected FILE or FILE:SCALE with a finite number for SCALE, "
                                "got '" + value + "' after the last ':'");
  return {path, *scale};
}

std::vector<std::pair<std::string, LinearWeights*>> named_linears(DiTWeights& w, const DiTConfig& cfg) {
  std::map<const Tensor*, std::string> names;
  for (const DiTWeights::Entry& e : w.tensor_table(cfg)) names[e.tensor] = e.name;
  std::vector<std::pair<std::string, LinearWeights*>> out;
  for (LinearWeights* l : w.linears()) {
    const auto it = names.find(&l->weight);
    if (it == names.end()) continue;  // a layer this config does not use
    const std::string& n = it->second;
    out.emplace_back(n.substr(0, n.size() - std::string(".weight").size()), l);
  }
  return out;
}

void merge_lora(DiTWeights& w, const DiTConfig& cfg, const LoraAdapter& a) {
  std::map<std::string, LinearWeights*> by_name;
  for (const auto& [name, l] : named_linears(w, cfg)) by_name[name] = l;
  for (const LoraLayer& l : a.layers) {
    const auto it = by_name.find(l.module);
    if (it == by_name.end()) bad(a, l, "'" + l.module + "' is not a linear layer of this model");
    LinearWeights& lin = *it->second;
    if (l.rank < 1 || int64_t(l.down.size()) != l.rank * l.in || int64_t(l.up.size()) != l.out * l.rank)
      bad(a, l, "inconsistent rank " + std::to_string(l.rank));
    if (l.in != lin.in() || l.out != lin.out())
      bad(a, l, "the adapter is " + std::to_string(l.out) + " x " + std::to_string(l.in) + " (out x in), the layer '" +
                    l.module + "' is " + std::to_string(lin.out()) + " x " + std::to_string(lin.in()));
    // delta (out, in) = s · up (out, r) · down (r, in)
    const float s = float(a.scale * l.alpha / double(l.rank));
    const Eigen::Map<const RowMatrix> up(l.up.data(), l.out, l.rank), down(l.down.data(), l.rank, l.in);
    RowMatrix delta = s * (up * down);
    const int64_t n = l.out * l.in;
    if (!lin.packed.empty()) {
      RowMatrix W(l.out, l.in);
      lin.packed.unpack(W.data());
      W += delta;
      lin.packed = gemm::PackedBF16::pack(W.data(), l.in, l.out);
    } else if (lin.weight.dtype() == DType::BF16) {
      uint16_t* bits = reinterpret_cast<uint16_t*>(lin.weight.raw());
      for (int64_t i = 0; i < n; ++i) bits[i] = float_to_bf16(bf16_to_float(bits[i]) + delta.data()[i]);
    } else {
      float* W = lin.weight.data();
      for (int64_t i = 0; i < n; ++i) W[i] += delta.data()[i];
    }
  }
}

}  // namespace ditgen
