#pragma once
// DiTModel: the Wan2.1-style video DiT of docs/model.md. forward() maps a noisy video, a
// timestep and raw conditioning to the velocity; self-attention goes through an
// AttentionBackend, so dense and sparse methods plug in without touching the model.
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "attention/backend.h"
#include "core/errors.h"
#include "dit/config.h"
#include "core/layout.h"
#include "dit/rope.h"
#include "core/tensor.h"
#include "dit/weights.h"

namespace ditgen {

// Time spent per part of the forward pass, and attention density per layer.
struct ForwardProfile {
  double attention_seconds = 0, linear_seconds = 0, other_seconds = 0;
  std::vector<double> layer_density_sum;  // per layer, summed over calls
  std::vector<int> layer_calls;
  void add_density(int layer, double d);
  double mean_density() const;  // over layers and calls
};

class DiTModel {
 public:
  DiTModel(DiTConfig cfg, DiTWeights weights);
  const DiTConfig& config() const { return cfg_; }

  // x: (B, T, H, W, C) noisy video; timesteps: (B) values 1000·σ; raw_ctx: (B, L, E).
  // out: (B, T, H, W, C) velocity. The backend's layout is built once per shape and cached.
  void forward(const float* x, const LatentShape& shape, int batch, const double* timesteps, const Tensor& raw_ctx,
               attn::AttentionBackend& backend, const attn::AttentionContext& actx, float* out,
               ForwardProfile* profile = nullptr);

  // Bytes the forward pass holds at its peak for this shape and batch (workspace and weights),
  // estimated before anything is allocated.
  int64_t estimate_peak_bytes(const LatentShape& shape, int batch) const;
  // Bytes the weights hold in memory (float32 tensors, bf16 packed panels).
  int64_t weight_bytes() const;

  // Temporal RoPE extrapolation for the runs that follow (RIFLEx); throws std::invalid_argument
  // for a pair the model does not have.
  void set_rope_extrapolation(RopeExtrapolation e);
  RopeExtrapolation rope_extrapolation() const { return rope_ext_; }

  // Per-block residual stream after each block (B, N, D) in frame-major order, for parity tests.
  void set_capture(std::vector<Tensor>* blocks) { capture_ = blocks; }
  const TokenLayout& layout() const { return layout_; }

 private:
  void prepare(const LatentShape& shape, const attn::AttentionBackend& backend);
  void embed_time(const double* timesteps, int batch, Tensor& e, Tensor& e0);
  void block_forward(int layer, int batch, const Tensor& e0, const Tensor& ctx, attn::AttentionBackend& backend,
                     attn::AttentionContext actx, ForwardProfile* profile);

  DiTConfig cfg_;
  DiTWeights w_;
  std::vector<LinearWeights> qkv_weights_;  // per block (3D, D), (3D): fused self-attention projections
  int64_t weight_bytes_ = 0;

  LatentShape shape_{0, 0, 0};
  std::string layout_key_;
  TokenLayout layout_;
  Rope3D rope_;
  RopeExtrapolation rope_ext_;

  // Workspace, reused across calls. N = tokens, B = batch.
  Tensor x_;        // (B, N, D) residual stream, layout order
  Tensor a_;        // (B, N, D) normalised/modulated input
  Tensor qkv_;      // (B, N, 3D)
  Tensor q_, k_, v_;  // (B*NH, N, Dh) head-major
  Tensor attn_;     // (B*NH, N, Dh)
  Tensor y_;        // (B, N, D)
  Tensor hidden_;   // (B, N, F)
  attn::AttentionKernel cross_kernel_;  // cross-attention: dense, float32 (the run's --isa is for self-attention)
  std::vector<Tensor>* capture_ = nullptr;
};

}  // namespace ditgen
