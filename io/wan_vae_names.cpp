#include "io/wan_vae_names.h"

#include <algorithm>
#include <regex>
#include <set>

namespace ditgen::io {

namespace {

// Inside a resnet: diffusers' norm1, conv1, norm2, conv2, conv_shortcut are the release's
// residual.0 (RMS norm), residual.2 (conv), residual.3, residual.6 and shortcut.
std::string resnet_part(const std::string& rest) {
  static const std::pair<const char*, const char*> kParts[] = {
      {"norm1.", "residual.0."}, {"conv1.", "residual.2."}, {"norm2.", "residual.3."},
      {"conv2.", "residual.6."}, {"conv_shortcut.", "shortcut."}};
  for (const auto& [from, to] : kParts) {
    const std::string f(from);
    if (rest.compare(0, f.size(), f) == 0) return to + rest.substr(f.size());
  }
  return rest;
}

}  // namespace

bool has_diffusers_wan_vae_names(const std::vector<std::string>& names) {
  return std::find(names.begin(), names.end(), "decoder.conv_in.weight") != names.end();
}

int diffusers_up_block_resnets(const std::vector<std::string>& names) {
  static const std::regex re(R"(^decoder\.up_blocks\.0\.resnets\.(\d+)\.)");
  std::set<int> seen;
  std::smatch m;
  for (const std::string& n : names)
    if (std::regex_search(n, m, re)) seen.insert(std::stoi(m[1]));
  return int(seen.size());
}

std::string wan_vae_release_name(const std::string& name, int up_block_resnets) {
  static const std::regex quant(R"(^(post_)?quant_conv\.(.*)$)");
  static const std::regex ends(R"(^(encoder|decoder)\.(conv_in|norm_out|conv_out)\.(.*)$)");
  static const std::regex mid(R"(^(encoder|decoder)\.mid_block\.(resnets|attentions)\.(\d+)\.(.*)$)");
  static const std::regex down(R"(^encoder\.down_blocks\.(\d+)\.(.*)$)");
  static const std::regex up(R"(^decoder\.up_blocks\.(\d+)\.(resnets|upsamplers)\.(\d+)\.(.*)$)");
  std::smatch m;
  if (std::regex_match(name, m, quant)) return std::string(m[1].matched ? "conv2." : "conv1.") + m[2].str();
  if (std::regex_match(name, m, ends)) {
    const std::string part = m[2] == "conv_in" ? "conv1." : m[2] == "norm_out" ? "head.0." : "head.2.";
    return m[1].str() + "." + part + m[3].str();
  }
  if (std::regex_match(name, m, mid)) {
    // The release's middle is (resnet, attention, resnet): resnet i at 2i, attention i at 2i + 1.
    const int i = std::stoi(m[3]);
    const bool resnet = m[2] == "resnets";
    return m[1].str() + ".middle." + std::to_string(resnet ? 2 * i : 2 * i + 1) + "." +
           (resnet ? resnet_part(m[4]) : m[4].str());
  }
  if (std::regex_match(name, m, down)) return "encoder.downsamples." + m[1].str() + "." + resnet_part(m[2]);
  if (std::regex_match(name, m, up) && up_block_resnets > 0) {
    // Stage i holds `up_block_resnets` resnets then (but for the last) its upsampler.
    const int base = std::stoi(m[1]) * (up_block_resnets + 1);
    if (m[2] == "resnets") return "decoder.upsamples." + std::to_string(base + std::stoi(m[3])) + "." + resnet_part(m[4]);
    if (m[3] == "0") return "decoder.upsamples." + std::to_string(base + up_block_resnets) + "." + m[4].str();
  }
  return name;
}

}  // namespace ditgen::io
