#include "io/wan_dit.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <map>
#include <tuple>
#include <stdexcept>

#include "io/safetensors.h"

namespace ditgen::io {

namespace {

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw std::runtime_error("Wan2.1 DiT file '" + path + "': " + what);
}

// The diffusers-format name of an original Wan2.1 name (docs/wan-reference.md lists the map).
std::string diffusers_name(const std::string& wan) {
  static const std::vector<std::pair<std::regex, std::string>> rules = {
      {std::regex(R"(^time_embedding\.0\.)"), "condition_embedder.time_embedder.linear_1."},
      {std::regex(R"(^time_embedding\.2\.)"), "condition_embedder.time_embedder.linear_2."},
      {std::regex(R"(^text_embedding\.0\.)"), "condition_embedder.text_embedder.linear_1."},
      {std::regex(R"(^text_embedding\.2\.)"), "condition_embedder.text_embedder.linear_2."},
      {std::regex(R"(^time_projection\.1\.)"), "condition_embedder.time_proj."},
      {std::regex(R"(^head\.modulation$)"), "scale_shift_table"},
      {std::regex(R"(^head\.head\.)"), "proj_out."},
      {std::regex(R"(^blocks\.(\d+)\.modulation$)"), "blocks.$1.scale_shift_table"},
      {std::regex(R"(^blocks\.(\d+)\.self_attn\.([qkv])\.)"), "blocks.$1.attn1.to_$2."},
      {std::regex(R"(^blocks\.(\d+)\.self_attn\.o\.)"), "blocks.$1.attn1.to_out.0."},
      {std::regex(R"(^blocks\.(\d+)\.self_attn\.norm_)"), "blocks.$1.attn1.norm_"},
      {std::regex(R"(^blocks\.(\d+)\.cross_attn\.([qkv])\.)"), "blocks.$1.attn2.to_$2."},
      {std::regex(R"(^blocks\.(\d+)\.cross_attn\.o\.)"), "blocks.$1.attn2.to_out.0."},
      {std::regex(R"(^blocks\.(\d+)\.cross_attn\.norm_)"), "blocks.$1.attn2.norm_"},
      {std::regex(R"(^blocks\.(\d+)\.norm3\.)"), "blocks.$1.norm2."},  // the cross-attention norm
      {std::regex(R"(^blocks\.(\d+)\.ffn\.0\.)"), "blocks.$1.ffn.net.0.proj."},
      {std::regex(R"(^blocks\.(\d+)\.ffn\.2\.)"), "blocks.$1.ffn.net.2."},
  };
  for (const auto& [re, to] : rules)
    if (std::regex_search(wan, re)) return std::regex_replace(wan, re, to);
  return wan;  // patch_embedding.* keeps its name
}

const std::vector<int64_t>& shape_of(const SafetensorsSet& f, const std::string& name) {
  if (!f.has(name)) fail(f.path(), "has no tensor '" + name + "'");
  return f.file(name).tensor(name).shape;
}

int64_t dim_at(const SafetensorsSet& f, const std::string& name, size_t axis, size_t rank) {
  const std::vector<int64_t>& s = shape_of(f, name);
  if (s.size() != rank) fail(f.path(), "tensor '" + name + "' has shape " + shape_string(s) + ", expected rank " + std::to_string(rank));
  return s[axis];
}

}  // namespace

std::string wan_diffusers_name(const std::string& release) { return diffusers_name(release); }

WanDiTSettings read_wan_config(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("Wan2.1 config '" + path + "' cannot be read");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error("Wan2.1 config '" + path + "' is not JSON: " + e.what());
  }
  WanDiTSettings s;
  auto integer = [&](const char* key, int lo, int hi, int& out) {
    if (!j.contains(key)) return false;
    if (!j[key].is_number_integer() || j[key].get<int64_t>() < lo || j[key].get<int64_t>() > hi)
      throw std::runtime_error("Wan2.1 config '" + path + "': " + key + " = " + j[key].dump() + ", expected an integer " +
                               std::to_string(lo) + " to " + std::to_string(hi));
    out = j[key].get<int>();
    return true;
  };
  if (!integer("num_heads", 1, 4096, s.num_heads) && !integer("num_attention_heads", 1, 4096, s.num_heads))
    throw std::runtime_error("Wan2.1 config '" + path + "' names no num_heads");
  integer("text_len", 1, 1 << 16, s.text_len);
  integer("ffn_dim", 1, 1 << 20, s.ffn_dim);
  integer("num_layers", 1, 4096, s.num_layers);
  if (!integer("dim", 1, 1 << 20, s.dim)) {
    int head_dim = 0;
    if (integer("attention_head_dim", 1, 1 << 16, head_dim)) s.dim = head_dim * s.num_heads;
  }
  if (j.contains("eps")) {
    if (!j["eps"].is_number() || !(j["eps"].get<double>() > 0 && j["eps"].get<double>() < 1))
      throw std::runtime_error("Wan2.1 config '" + path + "': eps = " + j["eps"].dump() + ", expected a number in (0, 1)");
    s.eps = j["eps"].get<double>();
  }
  return s;
}

namespace {
bool diffusers_names(const SafetensorsSet& f) {
  return !f.has("time_embedding.0.weight") && f.has("condition_embedder.time_embedder.linear_1.weight");
}
}  // namespace

WanDiTFiles locate_wan_dit(const std::string& model) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::is_regular_file(model, ec)) {
    const fs::path cfg = fs::path(model).parent_path() / "config.json";
    if (!fs::is_regular_file(cfg, ec))
      throw std::runtime_error("Wan2.1 DiT file '" + model + "' has no config.json beside it (the head count is not "
                               "in the weights): put the release's config.json in its folder");
    return {cfg.string(), model};
  }
  if (!fs::is_directory(model, ec)) throw std::runtime_error("model '" + model + "' is neither a file nor a folder");
  for (const fs::path& dir : {fs::path(model), fs::path(model) / "transformer"}) {
    const fs::path cfg = dir / "config.json";
    for (const char* name : {"diffusion_pytorch_model.safetensors.index.json", "diffusion_pytorch_model.safetensors"})
      if (fs::is_regular_file(dir / name, ec)) {
        if (!fs::is_regular_file(cfg, ec))
          throw std::runtime_error("model folder '" + dir.string() + "' has " + name + " but no config.json");
        return {cfg.string(), (dir / name).string()};
      }
  }
  throw std::runtime_error("model folder '" + model + "' has no Wan2.1 DiT: expected diffusion_pytorch_model.safetensors "
                           "(or its .index.json and shards) with config.json, in the folder or in transformer/");
}

SafetensorsSet open_wan_dit(const WanDiTFiles& files) {
  const std::string suffix = ".index.json";
  const std::string& w = files.weights;
  const bool index = w.size() > suffix.size() && w.compare(w.size() - suffix.size(), suffix.size(), suffix) == 0;
  return index ? SafetensorsSet::open_index(w) : SafetensorsSet::open(w);
}

DiTConfig wan_dit_config(const SafetensorsSet& f, const WanDiTSettings& settings) {
  const bool diffusers = diffusers_names(f);
  auto name = [&](const std::string& wan) { return diffusers ? diffusers_name(wan) : wan; };
  const std::string& path = f.path();
  DiTConfig c;
  c.dim = int(dim_at(f, name("patch_embedding.weight"), 0, 5));
  c.in_channels = int(dim_at(f, name("patch_embedding.weight"), 1, 5));
  c.patch_t = int(dim_at(f, name("patch_embedding.weight"), 2, 5));
  c.patch_h = int(dim_at(f, name("patch_embedding.weight"), 3, 5));
  c.patch_w = int(dim_at(f, name("patch_embedding.weight"), 4, 5));
  c.ffn_dim = int(dim_at(f, name("blocks.0.ffn.0.weight"), 0, 2));
  c.freq_dim = int(dim_at(f, name("time_embedding.0.weight"), 1, 2));
  c.ctx_dim = int(dim_at(f, name("text_embedding.0.weight"), 1, 2));
  c.num_layers = 0;
  while (f.has(name("blocks." + std::to_string(c.num_layers) + ".modulation"))) ++c.num_layers;
  for (const auto& [what, stated, found] : {std::tuple{"dim", settings.dim, c.dim},
                                            std::tuple{"ffn_dim", settings.ffn_dim, c.ffn_dim},
                                            std::tuple{"num_layers", settings.num_layers, c.num_layers}})
    if (stated != 0 && stated != found)
      fail(path, std::string("config.json says ") + what + " = " + std::to_string(stated) + " but the tensors have " +
                     std::to_string(found));
  if (settings.num_heads < 1 || c.dim % settings.num_heads != 0)
    fail(path, "num_heads = " + std::to_string(settings.num_heads) + " does not divide the width " + std::to_string(c.dim));
  c.num_heads = settings.num_heads;
  c.ctx_len = settings.text_len;
  c.num_classes = 0;
  c.eps = settings.eps;
  c.rope_theta = 10000.0;
  c.sample_shift = 5.0;
  c.sample_steps = 50;
  c.sample_cfg = 5.0;
  c.frame_height = 480;
  c.frame_width = 832;
  try {
    c.validate();
  } catch (const std::invalid_argument& e) {
    fail(path, e.what());
  }
  return c;
}

namespace {
// The tensors of `w` that are linear layers' weights (kept in the chosen dtype), and their layers.
std::map<const Tensor*, LinearWeights*> linear_weights(DiTWeights& w) {
  std::map<const Tensor*, LinearWeights*> s;
  for (LinearWeights* l : w.linears()) s[&l->weight] = l;
  return s;
}
}  // namespace

int64_t wan_dit_weight_bytes(const DiTConfig& cfg, DType dtype) {
  DiTWeights w;
  const std::vector<DiTWeights::Entry> table = w.tensor_table(cfg);
  const std::map<const Tensor*, LinearWeights*> lin = linear_weights(w);
  int64_t bytes = 0;
  for (const DiTWeights::Entry& e : table) {
    int64_t n = 1;
    for (int64_t d : e.shape) n *= d;
    bytes += n * int64_t(lin.count(e.tensor) ? dtype_size(dtype) : 4);
  }
  return bytes;
}

namespace {
// Checks every tensor of the table against the file; with `read`, loads it (linear layers'
// weights in settings.dtype, the rest float32).
LoadedModel read_wan_dit(const SafetensorsSet& f, const WanDiTSettings& settings, bool read) {
  if (settings.dtype != DType::F32 && settings.dtype != DType::BF16)
    throw std::invalid_argument(std::string("Wan2.1 DiT weights load as F32 or BF16, not ") + dtype_name(settings.dtype));
  const bool diffusers = diffusers_names(f);
  auto name = [&](const std::string& wan) { return diffusers ? diffusers_name(wan) : wan; };
  LoadedModel m;
  m.config = wan_dit_config(f, settings);
  const std::vector<DiTWeights::Entry> table = m.weights.tensor_table(m.config);
  const std::map<const Tensor*, LinearWeights*> lin = linear_weights(m.weights);
  for (const DiTWeights::Entry& e : table) {
    const std::string n = name(e.name);
    const std::vector<int64_t>& s = shape_of(f, n);
    if (s != e.shape) fail(f.path(), "tensor '" + n + "' has shape " + shape_string(s) + ", expected " + shape_string(e.shape));
    const SafetensorsFile& file = f.file(n);
    m.tensors.push_back({n, s, dtype_name(file.tensor(n).dtype)});
    if (!read) continue;
    if (lin.count(e.tensor) && settings.dtype == DType::BF16) {
      // Packed for the bf16 kernel one tensor at a time, so that the load never holds the
      // weights twice.
      e.tensor->reset(e.shape, DType::BF16);
      file.read_bf16(n, e.tensor->bf16());
      lin.at(e.tensor)->pack_bf16();
    } else {
      e.tensor->reset(e.shape, DType::F32);
      file.read_float(n, e.tensor->data());
    }
    file.drop_pages(n);
  }
  return m;
}
}  // namespace

LoadedModel load_wan_dit(const SafetensorsSet& f, const WanDiTSettings& settings) { return read_wan_dit(f, settings, true); }

LoadedModel inspect_wan_dit(const SafetensorsSet& f, const WanDiTSettings& settings) {
  return read_wan_dit(f, settings, false);
}

LoadedModel load_wan_dit(const std::string& path, const WanDiTSettings& settings) {
  return load_wan_dit(SafetensorsSet::open(path), settings);
}

}  // namespace ditgen::io
