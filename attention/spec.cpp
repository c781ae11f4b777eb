#include "attention/spec.h"

#include <stdexcept>

#include "attention/methods/methods.h"
#include "core/key_values.h"
#include "attention/sparse/sparse_backend.h"

namespace ditgen::attn {

AttnSpec parse_spec(const std::string& text) {
  AttnSpec s;
  const size_t colon = text.find(':');
  s.name = text.substr(0, colon);
  if (s.name.empty()) throw std::invalid_argument("attention spec '" + text + "' has no method name");
  if (colon == std::string::npos) return s;
  s.params = parse_key_values(text, text.substr(colon + 1), "attention spec");
  return s;
}


const std::vector<MethodInfo>& methods() {
#define METHOD(name, summary) {#name, summary, &make_##name},
  static const std::vector<MethodInfo> list = {
#include "attention/methods/list.h"
  };
#undef METHOD
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
