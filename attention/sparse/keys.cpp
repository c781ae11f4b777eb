#include "attention/sparse/keys.h"

#include <algorithm>
#include <sstream>
#include <stdexcept>

#include "core/numbers.h"

namespace ditgen::attn {

const std::string* KeySet::given(const std::string& key) {
  for (const auto& kv : resolved_)
    if (kv.first == key) throw std::logic_error("key '" + key + "' declared twice for method '" + method_ + "'");
  auto it = spec_.params.find(key);
  return it == spec_.params.end() ? nullptr : &it->second;
}

void KeySet::bad(const std::string& key, const std::string& value, const std::string& why) const {
  throw std::invalid_argument("attention method '" + method_ + "': " + key + "=" + value + " " + why);
}

std::string KeySet::str(const std::string& key, const std::string& def) {
  const std::string* g = given(key);
  resolved_.emplace_back(key, g ? *g : def);
  return resolved_.back().second;
}

std::string KeySet::choice(const std::string& key, const std::string& def, const std::vector<std::string>& choices) {
  const std::string* g = given(key);
  const std::string v = g ? *g : def;
  if (std::find(choices.begin(), choices.end(), v) == choices.end()) {
    std::string list;
    for (const auto& c : choices) list += (list.empty() ? "" : ", ") + c;
    bad(key, v, "is not one of: " + list);
  }
  resolved_.emplace_back(key, v);
  return v;
}

int KeySet::integer(const std::string& key, int def, int lo, int hi) {
  const std::string* g = given(key);
  int v = def;
  if (g) {
    const auto n = parse_int(*g);
    if (!n || *n < lo || *n > hi) bad(key, *g, "is not an integer in " + std::to_string(lo) + ".." + std::to_string(hi));
    v = *n;
  }
  resolved_.emplace_back(key, std::to_string(v));
  return v;
}

double KeySet::real(const std::string& key, double def, double lo, double hi) {
  const std::string* g = given(key);
  double v = def;
  if (g) {
    const auto x = parse_finite(*g);
    v = x.value_or(lo - 1);
    if (!x || !(v >= lo && v <= hi)) {
      std::ostringstream r;
      r << "is not a number in [" << lo << ", " << hi << "]";
      bad(key, *g, r.str());
    }
  }
  std::ostringstream o;
  o << v;
  resolved_.emplace_back(key, o.str());
  return v;
}

bool KeySet::flag(const std::string& key, bool def) {
  const std::string* g = given(key);
  bool v = def;
  if (g) {
    if (*g == "1" || *g == "true" || *g == "on") v = true;
    else if (*g == "0" || *g == "false" || *g == "off") v = false;
    else bad(key, *g, "is not 0 or 1");
  }
  resolved_.emplace_back(key, v ? "1" : "0");
  return v;
}

void KeySet::finish() const {
  std::string unknown, known;
  for (const auto& kv : resolved_) known += (known.empty() ? "" : ", ") + kv.first;
  for (const auto& [k, v] : spec_.params) {
    bool found = false;
    for (const auto& kv : resolved_) found = found || kv.first == k;
    if (!found) unknown += (unknown.empty() ? "'" : ", '") + k + "'";
  }
  if (!unknown.empty())
    throw std::invalid_argument("attention method '" + method_ + "' has no key " + unknown + " (keys: " + known + ")");
}

void KeySet::set(const std::string& key, std::string value) {
  for (auto& kv : resolved_)
    if (kv.first == key) {
      kv.second = std::move(value);
      return;
    }
  throw std::logic_error("attention method '" + method_ + "': key '" + key + "' was never declared");
}

void KeySet::drop(const std::string& key) {
  for (auto it = resolved_.begin(); it != resolved_.end(); ++it)
    if (it->first == key) {
      resolved_.erase(it);
      return;
    }
  throw std::logic_error("attention method '" + method_ + "': key '" + key + "' was never declared");
}

std::string KeySet::spec_string() const {
  std::string s = method_;
  for (size_t i = 0; i < resolved_.size(); ++i) s += (i == 0 ? ":" : ",") + resolved_[i].first + "=" + resolved_[i].second;
  return s;
}

Isa read_isa(KeySet& keys, Isa run_isa) {
  const Isa isa = parse_isa(keys.choice("isa", isa_name(run_isa), {"auto", "portable", "avx2", "avx512", "avx512bf16"}));
  if (!isa_supported(isa))
    throw std::invalid_argument("attention method '" + keys.method() + "': isa=" + isa_name(isa) +
                                " is not supported by this CPU or build (auto picks the best float32 path)");
  return isa;
}

CommonOptions read_common(KeySet& keys, const CommonDefaults& d, Isa run_isa) {
  CommonOptions c;
  c.block = keys.integer("block", d.block, 1, 1024);
  c.layout = keys.choice("layout", d.layout, layout_names());
  const std::string tile = keys.str("tile", d.tile);
  try {
    c.tile = parse_tile(tile);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument("attention method '" + keys.method() + "': tile: " + e.what());
  }
  const std::string steps = keys.str("dense_steps", d.dense_steps);
  const int layers = keys.integer("dense_layers", d.dense_layers, 0, 1 << 20);
  c.schedule = DenseSchedule::parse(steps, layers);
  c.schedule.auto_tol = keys.real("auto_tol", 0.05, 0.0, 1e9);
  c.schedule.auto_rows = keys.integer("auto_rows", 64, 1, 1 << 20);
  c.schedule.refresh = keys.integer("refresh", 0, 0, 1 << 20);
  if (c.schedule.refresh > 0 && c.schedule.kind == DenseSchedule::Kind::Auto)
    throw std::invalid_argument("attention method '" + keys.method() + "': refresh = " +
                                std::to_string(c.schedule.refresh) +
                                " needs a fixed dense_steps (a count or a fraction), not dense_steps=auto");
  c.fallback_dense = keys.choice("fallback", "dense", {"dense", "none"}) == "dense";
  c.isa = read_isa(keys, run_isa);
  return c;
}

}  // namespace ditgen::attn
