// LoRA adapter files (lora_file.h).
#include "io/lora_file.h"

#include <cmath>
#include <map>
#include <stdexcept>

#include "core/numbers.h"
#include "io/safetensors.h"
#include "io/wan_dit.h"

namespace ditgen::io {

namespace {

struct Parts {
  std::string down, up, alpha;  // tensor names found for the module
};

bool strip_suffix(std::string& s, const std::string& suffix) {
  if (s.size() <= suffix.size() || s.compare(s.size() - suffix.size(), suffix.size(), suffix) != 0) return false;
  s.resize(s.size() - suffix.size());
  return true;
}

std::string strip_prefixes(std::string s) {
  static const char* prefixes[] = {"model.diffusion_model.", "diffusion_model.", "base_model.model.", "transformer.",
                                   "model.", "lora_unet_", "lora_transformer_"};
  for (bool again = true; again;) {
    again = false;
    for (const char* p : prefixes) {
      const std::string pre(p);
      if (s.size() > pre.size() && s.compare(0, pre.size(), pre) == 0) {
        s = s.substr(pre.size());
        again = true;
      }
    }
  }
  return s;
}

std::string underscored(std::string s) {
  for (char& c : s)
    if (c == '.') c = '_';
  return s;
}

}  // namespace

LoraAdapter read_lora(const std::string& path, double scale, const std::vector<std::string>& modules) {
  auto fail = [&](const std::string& what) -> std::runtime_error {
    return std::runtime_error("LoRA '" + path + "': " + what);
  };
  // Every spelling of every module: release, diffusers, and both with '_' for '.'.
  std::map<std::string, std::string> spelling;
  for (const std::string& m : modules) {
    std::string d = wan_diffusers_name(m + ".");
    d.pop_back();
    for (const std::string& s : {m, d, underscored(m), underscored(d)}) spelling.emplace(s, m);
  }
  SafetensorsFile f = [&] {
    try {
      return SafetensorsFile::open(path);
    } catch (const std::exception& e) {
      throw fail(e.what());
    }
  }();
  std::map<std::string, Parts> found;  // by release module name
  std::map<std::string, std::string> source;
  for (const SafetensorsTensor& t : f.tensors()) {
    std::string module = strip_prefixes(t.name);
    int kind = -1;  // 0 down, 1 up, 2 alpha
    if (strip_suffix(module, ".lora_A.weight") || strip_suffix(module, ".lora_down.weight")) {
      kind = 0;
    } else if (strip_suffix(module, ".lora_B.weight") || strip_suffix(module, ".lora_up.weight")) {
      kind = 1;
    } else if (strip_suffix(module, ".alpha")) {
      kind = 2;
    } else {
      throw fail("tensor '" + t.name + "' is of no LoRA layout this reader knows (MODULE.lora_A.weight, "
                 "MODULE.lora_B.weight, MODULE.lora_down.weight, MODULE.lora_up.weight, MODULE.alpha)");
    }
    const auto it = spelling.find(module);
    if (it == spelling.end())
      throw fail("tensor '" + t.name + "' is for '" + module + "', which is not a linear layer of this model (e.g. '" +
                 (modules.empty() ? std::string() : modules.back()) + "')");
    Parts& parts = found[it->second];
    std::string* slot = kind == 0 ? &parts.down : kind == 1 ? &parts.up : &parts.alpha;
    if (!slot->empty()) throw fail("tensors '" + *slot + "' and '" + t.name + "' are for the same part of '" + module + "'");
    *slot = t.name;
    source.emplace(it->second, module);
  }
  LoraAdapter a;
  a.path = path;
  a.scale = scale;
  for (const auto& [module, parts] : found) {
    if (parts.down.empty() || parts.up.empty())
      throw fail("'" + source[module] + "' has " + (parts.down.empty() ? "an up (B) tensor '" + parts.up + "' but no down (A)"
                                                                       : "a down (A) tensor '" + parts.down + "' but no up (B)"));
    const auto& ds = f.tensor(parts.down).shape;
    const auto& us = f.tensor(parts.up).shape;
    if (ds.size() != 2 || us.size() != 2)
      throw fail("'" + source[module] + "': down and up must be matrices, got " + std::to_string(ds.size()) + " and " +
                 std::to_string(us.size()) + " dimensions");
    if (ds[0] != us[1])
      throw fail("'" + source[module] + "': the down tensor has rank " + std::to_string(ds[0]) + ", the up tensor " +
                 std::to_string(us[1]));
    LoraLayer l;
    l.module = module;
    l.source = source[module];
    l.rank = ds[0];
    l.in = ds[1];
    l.out = us[0];
    l.down = f.to_float(parts.down);
    l.up = f.to_float(parts.up);
    l.alpha = double(l.rank);
    if (!parts.alpha.empty()) {
      const std::vector<float> alpha = f.to_float(parts.alpha);
      if (alpha.size() != 1 || !std::isfinite(alpha[0]))
        throw fail("'" + parts.alpha + "' must hold one finite value, it holds " + std::to_string(alpha.size()));
      l.alpha = alpha[0];
    }
    a.layers.push_back(std::move(l));
  }
  if (a.layers.empty()) throw fail("holds no LoRA layer");
  return a;
}

LoraTraining lora_training(const std::string& path) {
  const SafetensorsFile f = SafetensorsFile::open(path);
  const auto& meta = f.metadata();
  LoraTraining t;
  if (const auto it = meta.find("ditgen.attention"); it != meta.end()) t.attention = it->second;
  if (const auto it = meta.find("ditgen.riflex"); it != meta.end()) {
    const std::optional<int> k = parse_int(it->second);
    if (!k || *k < 1)
      throw std::runtime_error(path + ": metadata ditgen.riflex '" + it->second + "' is not a rotary pair (a positive integer)");
    t.riflex = k;
  }
  return t;
}

}  // namespace ditgen::io
