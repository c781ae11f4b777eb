#include "attention/spec.h"

#include <sstream>
#include <stdexcept>

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

std::unique_ptr<AttentionBackend> make_backend(const std::string& text, const KernelOptions& opt) {
  const AttnSpec s = parse_spec(text);
  if (s.name == "dense") {
    int block = 64;
    for (const auto& [k, v] : s.params) {
      if (k != "block") throw std::invalid_argument("attention method 'dense' has no key '" + k + "' (keys: block)");
      block = std::stoi(v);
    }
    return std::make_unique<DenseBackend>(block, opt);
  }
  throw std::invalid_argument("unknown attention method '" + s.name + "' (known: dense)");
}

}  // namespace ditgen::attn
