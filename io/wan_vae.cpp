#include "io/wan_vae.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "io/safetensors.h"
#include "io/wan_vae_names.h"
#include "core/tensor.h"

namespace ditgen::io {

namespace {

using vae::ConvWeights;

class Reader {
 public:
  // Names are the release's; a diffusers-format file's are mapped to them (io/wan_vae_names.h).
  explicit Reader(const std::string& path) : f_(SafetensorsFile::open(path)) {
    std::vector<std::string> names;
    for (const SafetensorsTensor& t : f_.tensors()) names.push_back(t.name);
    diffusers_ = has_diffusers_wan_vae_names(names);
    const int resnets = diffusers_ ? diffusers_up_block_resnets(names) : 0;
    for (const std::string& n : names) file_names_[diffusers_ ? wan_vae_release_name(n, resnets) : n] = n;
  }
  [[noreturn]] void fail(const std::string& what) const {
    throw std::runtime_error("Wan2.1 VAE file '" + f_.path() + "': " + what +
                             (diffusers_ ? " (names as in the release; the file has diffusers' AutoencoderKLWan names)" : ""));
  }
  bool diffusers() const { return diffusers_; }
  bool has(const std::string& name) const { return file_names_.count(name) != 0; }
  const std::vector<int64_t>& shape(const std::string& name) const {
    if (!has(name)) fail("has no tensor '" + name + "'");
    return f_.tensor(file_names_.at(name)).shape;
  }
  void expect(const std::string& name, const std::vector<int64_t>& want) const {
    if (shape(name) != want)
      fail("tensor '" + name + "' has shape " + shape_string(shape(name)) + ", expected " + shape_string(want));
  }
  std::vector<float> read(const std::string& name) const { return f_.to_float(file_names_.at(name)); }

  // A Conv3d (rank 5) or Conv2d (rank 4) and its bias; `cin` checked (0: any).
  ConvWeights conv(const std::string& prefix, int rank, int cin) const {
    const std::string wn = prefix + ".weight", bn = prefix + ".bias";
    const std::vector<int64_t>& s = shape(wn);
    if (int(s.size()) != rank || (cin > 0 && s[1] != cin)) {
      std::string want = "(Cout, " + (cin > 0 ? std::to_string(cin) : std::string("Cin")) +
                         (rank == 5 ? ", kt, kh, kw)" : ", kh, kw)");
      fail("tensor '" + wn + "' has shape " + shape_string(s) + ", expected " + want);
    }
    for (int64_t d : s)
      if (d < 1) fail("tensor '" + wn + "' has shape " + shape_string(s) + ", expected no empty dimension");
    expect(bn, {s[0]});
    const std::vector<float> w = read(wn), b = read(bn);
    const int kt = rank == 5 ? int(s[2]) : 1;
    return ConvWeights::from_torch(w.data(), b.data(), int(s[0]), int(s[1]), kt, int(s[rank - 2]), int(s[rank - 1]));
  }
  // A CausalConv3d of kernel (kt, k, k) with k odd (its padding keeps the size).
  ConvWeights causal(const std::string& prefix, int cin, int kt, int k, int cout = 0) const {
    ConvWeights c = conv(prefix, 5, cin);
    if (c.kt != kt || c.kh != k || c.kw != k || (cout > 0 && c.cout != cout))
      fail("tensor '" + prefix + ".weight' has shape " + shape_string(shape(prefix + ".weight")) + ", expected (" +
           (cout > 0 ? std::to_string(cout) : std::string("Cout")) + ", " + std::to_string(cin) + ", " +
           std::to_string(kt) + ", " + std::to_string(k) + ", " + std::to_string(k) + ")");
    return c;
  }
  // An RMS_norm's gamma of C channels, stored (C, 1, 1, 1) or (C, 1, 1).
  std::vector<float> gamma(const std::string& name, int c) const {
    const std::vector<int64_t>& s = shape(name);
    bool ok = !s.empty() && s[0] == c;
    for (size_t i = 1; i < s.size(); ++i) ok = ok && s[i] == 1;
    if (!ok) fail("tensor '" + name + "' has shape " + shape_string(s) + ", expected (" + std::to_string(c) + ", 1, 1[, 1])");
    return read(name);
  }
  // The indices N of `prefix.N.*`, which must run 0 .. count - 1.
  int count(const std::string& prefix) const {
    const std::regex re("^" + std::regex_replace(prefix, std::regex(R"(\.)"), R"(\.)") + R"(\.(\d+)\.)");
    std::set<int> seen;
    std::smatch m;
    for (const auto& [name, file_name] : file_names_)
      if (std::regex_search(name, m, re)) seen.insert(std::stoi(m[1]));
    int n = 0;
    for (int i : seen) {
      if (i != n) fail("has '" + prefix + "." + std::to_string(i) + ".*' but no '" + prefix + "." + std::to_string(n) + ".*'");
      ++n;
    }
    return n;
  }

 private:
  SafetensorsFile f_;
  bool diffusers_ = false;
  std::map<std::string, std::string> file_names_;  // release name -> the file's
};

vae::ResidualBlock residual(const Reader& r, const std::string& p, int& width) {
  vae::ResidualBlock b;
  const int cin = width;
  b.gamma1 = r.gamma(p + ".residual.0.gamma", cin);
  b.conv1 = std::make_unique<vae::CausalConv>(r.causal(p + ".residual.2", cin, 3, 3));
  const int cout = b.conv1->weights().cout;
  b.gamma2 = r.gamma(p + ".residual.3.gamma", cout);
  b.conv2 = std::make_unique<vae::CausalConv>(r.causal(p + ".residual.6", cout, 3, 3, cout));
  if (cin != cout)
    b.shortcut = r.causal(p + ".shortcut", cin, 1, 1, cout);
  else if (r.has(p + ".shortcut.weight"))
    r.fail("tensor '" + p + ".shortcut.weight' is present but the block keeps its width " + std::to_string(cin));
  width = cout;
  return b;
}

vae::AttentionBlock attention(const Reader& r, const std::string& p, int width) {
  vae::AttentionBlock a;
  a.gamma = r.gamma(p + ".norm.gamma", width);
  a.to_qkv = r.conv(p + ".to_qkv", 4, width);
  a.proj = r.conv(p + ".proj", 4, width);
  if (a.to_qkv.cout != 3 * width || a.to_qkv.kh != 1 || a.to_qkv.kw != 1)
    r.fail("tensor '" + p + ".to_qkv.weight' has shape " + shape_string(r.shape(p + ".to_qkv.weight")) + ", expected (" +
           std::to_string(3 * width) + ", " + std::to_string(width) + ", 1, 1)");
  if (a.proj.cout != width || a.proj.kh != 1 || a.proj.kw != 1)
    r.fail("tensor '" + p + ".proj.weight' has shape " + shape_string(r.shape(p + ".proj.weight")) + ", expected (" +
           std::to_string(width) + ", " + std::to_string(width) + ", 1, 1)");
  return a;
}

void conv3x3(const Reader& r, const ConvWeights& c, const std::string& name, int cout) {
  if (c.kh != 3 || c.kw != 3 || c.cout != cout)
    r.fail("tensor '" + name + "' has shape " + shape_string(r.shape(name)) + ", expected (" + std::to_string(cout) + ", " +
           std::to_string(c.cin) + ", 3, 3)");
}

vae::Layer upsample(const Reader& r, const std::string& p, int& width) {
  vae::Upsample u;
  if (width % 2 != 0) r.fail("'" + p + "' upsamples " + std::to_string(width) + " channels, expected an even count");
  u.conv = r.conv(p + ".resample.1", 4, width);
  conv3x3(r, u.conv, p + ".resample.1.weight", width / 2);
  if (r.has(p + ".time_conv.weight"))
    u.time_conv = std::make_unique<vae::CausalConv>(r.causal(p + ".time_conv", width, 3, 1, 2 * width));
  width /= 2;
  return u;
}

vae::Layer downsample(const Reader& r, const std::string& p, int width) {
  vae::Downsample d;
  d.conv = r.conv(p + ".resample.1", 4, width);
  conv3x3(r, d.conv, p + ".resample.1.weight", width);
  if (r.has(p + ".time_conv.weight")) d.time_conv = r.causal(p + ".time_conv", width, 3, 1, width);
  return d;
}

// The blocks `prefix.0 .. prefix.N-1`, each a residual block, an attention block or a resample.
void blocks(const Reader& r, const std::string& prefix, bool up, int& width, std::vector<vae::Layer>& out) {
  const int n = r.count(prefix);
  for (int i = 0; i < n; ++i) {
    const std::string p = prefix + "." + std::to_string(i);
    if (r.has(p + ".residual.0.gamma"))
      out.emplace_back(residual(r, p, width));
    else if (r.has(p + ".to_qkv.weight"))
      out.emplace_back(attention(r, p, width));
    else if (r.has(p + ".resample.1.weight"))
      out.push_back(up ? upsample(r, p, width) : downsample(r, p, width));
    else
      r.fail("block '" + p + "' is neither a residual block (residual.0.gamma), an attention block (to_qkv) nor a "
             "resample (resample.1)");
  }
}

// conv1, the blocks, the middle (residual, attention, residual) and the head.
void stream(const Reader& r, const std::string& side, int cin, int head_out, vae::LayerStream& s) {
  int width = 0;
  {
    vae::ConvLayer c;
    c.conv = std::make_unique<vae::CausalConv>(r.causal(side + ".conv1", cin, 3, 3));
    width = c.conv->weights().cout;
    s.layers.emplace_back(std::move(c));
  }
  const bool up = side == "decoder";
  if (up) {
    blocks(r, side + ".middle", true, width, s.layers);
    blocks(r, side + ".upsamples", true, width, s.layers);
  } else {
    blocks(r, side + ".downsamples", false, width, s.layers);
    blocks(r, side + ".middle", false, width, s.layers);
  }
  vae::ConvLayer head;
  head.gamma = r.gamma(side + ".head.0.gamma", width);
  head.conv = std::make_unique<vae::CausalConv>(r.causal(side + ".head.2", width, 3, 3, head_out));
  s.layers.emplace_back(std::move(head));
}

// diffusers keeps the latent statistics in the vae/config.json beside the weights (the release
// has them in its code): where that file is there, it must be an AutoencoderKLWan with Wan2.1's.
void check_diffusers_config(const Reader& r, const std::string& path, int z_dim) {
  const std::filesystem::path cfg = std::filesystem::path(path).parent_path() / "config.json";
  std::ifstream in(cfg);
  if (!in) return;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    r.fail("its '" + cfg.string() + "' is not JSON: " + e.what());
  }
  if (!j.is_object()) r.fail("its '" + cfg.string() + "' is not a JSON object");
  if (j.contains("_class_name") && j["_class_name"] != "AutoencoderKLWan")
    r.fail("its '" + cfg.string() + "' describes a " + j["_class_name"].dump() + ", expected AutoencoderKLWan");
  if (j.contains("z_dim") && j["z_dim"] != z_dim)
    r.fail("its '" + cfg.string() + "' has z_dim " + j["z_dim"].dump() + " but the tensors have " + std::to_string(z_dim) + " latent channels");
  const std::pair<const char*, const std::vector<float>*> stats[] = {{"latents_mean", &vae::wan21_latents_mean()},
                                                                      {"latents_std", &vae::wan21_latents_std()}};
  for (const auto& [key, want] : stats) {
    if (!j.contains(key)) continue;
    const nlohmann::json& got = j[key];
    bool same = got.is_array() && got.size() == want->size();
    for (size_t c = 0; same && c < want->size(); ++c)
      same = got[c].is_number() && std::fabs(got[c].get<double>() - (*want)[c]) <= 1e-6 * std::fabs((*want)[c]) + 1e-7;
    if (!same)
      r.fail("its '" + cfg.string() + "' has " + key + " " + got.dump() + ", which are not Wan2.1's (this engine decodes "
             "with the release's statistics)");
  }
}

}  // namespace

std::string locate_wan_vae(const std::string& model) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path p(model);
  if (fs::is_regular_file(p, ec)) return model;
  if (!fs::is_directory(p, ec)) throw MissingFile("VAE '" + model + "' is neither a file nor a folder");
  if (fs::is_regular_file(p / "Wan2.1_VAE.safetensors", ec)) return (p / "Wan2.1_VAE.safetensors").string();
  if (fs::is_regular_file(p / "Wan2.1_VAE.pth", ec))
    throw MissingFile("model folder '" + model + "' has Wan2.1_VAE.pth but no Wan2.1_VAE.safetensors: convert it "
                             "with tools/wan/convert_pth.py (the engine reads no pickles)");
  // A diffusers-format folder (or its transformer/, as --model may name it) keeps the VAE in vae/.
  const fs::path folder = p.filename().empty() ? p.parent_path() : p;
  for (const fs::path& vae : {folder / "vae", folder.parent_path() / "vae"}) {
    if (vae == folder.parent_path() / "vae" && folder.filename() != "transformer") continue;
    if (fs::is_regular_file(vae / "diffusion_pytorch_model.safetensors", ec))
      return (vae / "diffusion_pytorch_model.safetensors").string();
    if (fs::is_directory(vae, ec))
      throw MissingFile("diffusers-format folder '" + vae.string() + "' has no diffusion_pytorch_model.safetensors");
  }
  throw MissingFile("model folder '" + model + "' has no Wan2.1 VAE: expected Wan2.1_VAE.safetensors (or a "
                    "diffusers-format vae/diffusion_pytorch_model.safetensors)");
}

std::unique_ptr<vae::WanVae> load_wan_vae(const std::string& path, DType dtype, bool encoder) {
  if (dtype != DType::F32 && dtype != DType::BF16)
    throw std::invalid_argument("the VAE runs in float32 or bf16, not " + std::string(dtype_name(dtype)));
  const Reader r(path);
  auto v = std::make_unique<vae::WanVae>();
  const std::vector<int64_t>& s = r.shape("conv2.weight");
  if (s.size() != 5 || s[0] != s[1] || s[2] != 1 || s[3] != 1 || s[4] != 1)
    r.fail("tensor 'conv2.weight' has shape " + shape_string(s) + ", expected (Z, Z, 1, 1, 1)");
  v->z_dim = int(s[0]);
  if (v->z_dim != int(vae::wan21_latents_mean().size()))
    r.fail("latents of " + std::to_string(v->z_dim) + " channels; Wan2.1's statistics are for " +
           std::to_string(vae::wan21_latents_mean().size()));
  v->mean = vae::wan21_latents_mean();
  v->std = vae::wan21_latents_std();
  if (r.diffusers()) check_diffusers_config(r, path, v->z_dim);
  v->post_quant = r.causal("conv2", v->z_dim, 1, 1, v->z_dim);
  stream(r, "decoder", v->z_dim, 3, v->decoder);
  if (encoder && r.has("encoder.conv1.weight")) {
    stream(r, "encoder", 3, 2 * v->z_dim, v->encoder);
    v->quant = r.causal("conv1", 2 * v->z_dim, 1, 1, 2 * v->z_dim);
  }
  if (dtype == DType::BF16) v->pack_bf16();
  return v;
}

}  // namespace ditgen::io
