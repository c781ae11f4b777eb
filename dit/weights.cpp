#include "dit/weights.h"

#include <cmath>
#include <random>

#include "dit/ops.h"

namespace ditgen {

void LinearWeights::apply(const float* x, int64_t rows, float* y) const {
  if (packed.empty()) {
    ops::linear(x, rows, in(), weight.data(), bias.data(), out(), y);
    return;
  }
  gemm::matmul_nt_packed(x, rows, packed, y);
  ops::add_bias(y, rows, out(), bias.data());
}

void LinearWeights::pack_bf16() {
  if (weight.dtype() != DType::BF16) return;
  packed = gemm::PackedBF16::pack(weight.bf16(), weight.size() / weight.dim(0), weight.dim(0));
  weight = Tensor();
}

std::vector<LinearWeights*> DiTWeights::linears() {
  std::vector<LinearWeights*> v = {&patch, &time0, &time2, &time_proj, &text0, &text2, &head};
  for (BlockWeights& b : blocks)
    for (LinearWeights* l : {&b.sa_q, &b.sa_k, &b.sa_v, &b.sa_o, &b.ca_q, &b.ca_k, &b.ca_v, &b.ca_o, &b.ffn0, &b.ffn2})
      v.push_back(l);
  return v;
}

std::vector<DiTWeights::Entry> DiTWeights::tensor_table(const DiTConfig& cfg) {
  const int64_t D = cfg.dim, F = cfg.ffn_dim, E = cfg.ctx_dim;
  blocks.resize(size_t(cfg.num_layers));
  std::vector<Entry> t;
  auto lin = [&](const std::string& name, LinearWeights& w, int64_t out, int64_t in) {
    t.push_back({name + ".weight", {out, in}, &w.weight});
    t.push_back({name + ".bias", {out}, &w.bias});
  };
  t.push_back({"patch_embedding.weight", {D, cfg.in_channels, cfg.patch_t, cfg.patch_h, cfg.patch_w}, &patch.weight});
  t.push_back({"patch_embedding.bias", {D}, &patch.bias});
  lin("time_embedding.0", time0, D, cfg.freq_dim);
  lin("time_embedding.2", time2, D, D);
  lin("time_projection.1", time_proj, 6 * D, D);
  lin("text_embedding.0", text0, D, E);
  lin("text_embedding.2", text2, D, D);
  if (cfg.num_classes > 0) {
    t.push_back({"label_embedding.weight", {int64_t(cfg.num_classes) + 1, E}, &label_embedding});
    t.push_back({"label_position", {int64_t(cfg.ctx_len), E}, &label_position});
  }
  t.push_back({"head.modulation", {1, 2, D}, &head_modulation});
  lin("head.head", head, cfg.patch_values(), D);
  for (int i = 0; i < cfg.num_layers; ++i) {
    BlockWeights& b = blocks[size_t(i)];
    const std::string p = "blocks." + std::to_string(i) + ".";
    t.push_back({p + "modulation", {1, 6, D}, &b.modulation});
    lin(p + "self_attn.q", b.sa_q, D, D);
    lin(p + "self_attn.k", b.sa_k, D, D);
    lin(p + "self_attn.v", b.sa_v, D, D);
    lin(p + "self_attn.o", b.sa_o, D, D);
    t.push_back({p + "self_attn.norm_q.weight", {D}, &b.sa_norm_q});
    t.push_back({p + "self_attn.norm_k.weight", {D}, &b.sa_norm_k});
    t.push_back({p + "norm3.weight", {D}, &b.norm3_w});
    t.push_back({p + "norm3.bias", {D}, &b.norm3_b});
    lin(p + "cross_attn.q", b.ca_q, D, D);
    lin(p + "cross_attn.k", b.ca_k, D, D);
    lin(p + "cross_attn.v", b.ca_v, D, D);
    lin(p + "cross_attn.o", b.ca_o, D, D);
    t.push_back({p + "cross_attn.norm_q.weight", {D}, &b.ca_norm_q});
    t.push_back({p + "cross_attn.norm_k.weight", {D}, &b.ca_norm_k});
    lin(p + "ffn.0", b.ffn0, F, D);
    lin(p + "ffn.2", b.ffn2, D, F);
  }
  return t;
}

void DiTWeights::allocate(const DiTConfig& cfg) {
  for (auto& e : tensor_table(cfg)) e.tensor->reset(e.shape);
}

int64_t DiTWeights::parameter_count(const DiTConfig& cfg) {
  int64_t n = 0;
  for (auto& e : tensor_table(cfg)) {
    int64_t k = 1;
    for (int64_t d : e.shape) k *= d;
    n += k;
  }
  return n;
}

DiTWeights DiTWeights::random(const DiTConfig& cfg, uint64_t seed) {
  DiTWeights w;
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (auto& e : w.tensor_table(cfg)) {
    e.tensor->reset(e.shape);
    const bool norm_weight = e.name.find("norm") != std::string::npos && e.name.find(".weight") != std::string::npos;
    // Fan-in scaled so activations stay O(1) through the stack.
    const float scale = e.shape.size() >= 2 ? 1.0f / std::sqrt(float(e.tensor->size() / e.shape[0])) : 0.1f;
    for (int64_t i = 0; i < e.tensor->size(); ++i)
      (*e.tensor)[i] = norm_weight ? 1.0f + 0.1f * normal(rng) : scale * normal(rng);
  }
  return w;
}

}  // namespace ditgen
