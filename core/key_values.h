#pragma once
// "key=value,key=value" lists of the --attn and --cache specs.
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>

namespace ditgen {

// Splits `body` (the part of `text` after NAME:) into keys and values; `what` names the spec in
// errors ("attention spec"). Throws std::invalid_argument for an item without '=', an empty key
// or value, or a key given twice.
inline std::map<std::string, std::string> parse_key_values(const std::string& text, const std::string& body,
                                                           const std::string& what) {
  std::map<std::string, std::string> params;
  std::stringstream rest(body);
  std::string item;
  while (std::getline(rest, item, ',')) {
    const size_t eq = item.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == item.size())
      throw std::invalid_argument(what + " '" + text + "': '" + item + "' is not key=value");
    const std::string key = item.substr(0, eq);
    if (params.count(key)) throw std::invalid_argument(what + " '" + text + "': key '" + key + "' given twice");
    params[key] = item.substr(eq + 1);
  }
  return params;
}

}  // namespace ditgen
