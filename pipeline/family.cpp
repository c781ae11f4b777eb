#include "pipeline/family.h"

#include "cond/labels.h"
#include "dit/lora.h"
#include "io/lora_file.h"
#include "pipeline/isolated_loader.h"
#include "pipeline/wan.h"

namespace ditgen::pipeline {

DiTConfig tiny_config() {
  DiTConfig c;
  c.dim = 64;
  c.ffn_dim = 128;
  c.num_heads = 2;
  c.num_layers = 2;
  c.freq_dim = 32;
  c.ctx_dim = 32;
  c.frame_height = 32;
  c.frame_width = 32;
  c.sample_steps = 4;
  return c;
}

Model assemble_model(const DiTConfig& cfg, DiTWeights w) {
  cfg.validate();
  Model m;
  if (cfg.num_classes > 0) {
    m.family = "labels";
    m.conditioner = std::make_unique<LabelConditioner>(cfg.num_classes, cfg.ctx_len, std::move(w.label_embedding),
                                                       std::move(w.label_position));
  } else {
    m.family = "raw-context";
  }
  m.dit = std::make_unique<DiTModel>(cfg, std::move(w));
  m.decoder = std::make_unique<PixelDecoder>();
  m.defaults.steps = cfg.sample_steps;
  m.defaults.cfg = cfg.sample_cfg;
  m.defaults.shift = cfg.sample_shift;
  m.defaults.height = cfg.frame_height;
  m.defaults.width = cfg.frame_width;
  return m;
}

io::LoraTraining adapters_training(const std::vector<std::pair<std::string, double>>& loras) {
  io::LoraTraining agreed;
  std::string attention_from, riflex_from;
  for (const auto& [path, scale] : loras) {
    if (scale == 0) continue;  // merged as nothing: it chooses nothing either
    const io::LoraTraining t = io::lora_training(path);
    if (t.attention) {
      if (agreed.attention && *agreed.attention != *t.attention)
        throw std::invalid_argument("adapters '" + attention_from + "' and '" + path + "' were trained for different attention ('" +
                                    *agreed.attention + "', '" + *t.attention + "'): choose one with --attn");
      agreed.attention = t.attention;
      attention_from = path;
    }
    if (t.riflex) {
      if (agreed.riflex && *agreed.riflex != *t.riflex)
        throw std::invalid_argument("adapters '" + riflex_from + "' and '" + path + "' were trained with different RIFLEx pairs (" +
                                    std::to_string(*agreed.riflex) + ", " + std::to_string(*t.riflex) +
                                    "): choose one with --riflex");
      agreed.riflex = t.riflex;
      riflex_from = path;
    }
  }
  return agreed;
}

void apply_loras(DiTWeights& w, const DiTConfig& cfg, const std::vector<std::pair<std::string, double>>& loras) {
  if (loras.empty()) return;
  std::vector<std::string> modules;
  for (const auto& named : named_linears(w, cfg)) modules.push_back(named.first);
  for (const auto& [path, scale] : loras) merge_lora(w, cfg, io::read_lora(path, scale, modules));
}

Model load_model(const std::string& spec, const LoadOptions& options) {
  if (is_wan_spec(spec)) return load_wan_model(spec, options);
  if (options.dtype && *options.dtype != DType::F32)
    throw std::invalid_argument("--dtype bf16 applies to Wan2.1 models; '" + spec + "' loads as float32");
  if (spec == "builtin:tiny") {
    const DiTConfig c = tiny_config();
    DiTWeights w = DiTWeights::random(c, 1234);
    apply_loras(w, c, options.loras);
    return assemble_model(c, std::move(w));
  }
  io::LoadedModel m = load_weights_isolated(spec, true);
  apply_loras(m.weights, m.config, options.loras);
  return assemble_model(m.config, std::move(m.weights));
}

}  // namespace ditgen::pipeline
