#pragma once
// DiTWeights: every tensor of the model (names and shapes in docs/model.md §10): float32, or
// bfloat16 for the linear layers' weights of a model kept in bf16 (DiTModel packs those).
// tensor_table() is the one list of (name, shape, storage) used by the loader, the writer,
// `ditgen inspect` and random initialisation.
#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "dit/config.h"
#include "dit/gemm_bf16.h"

namespace ditgen {

struct LinearWeights {
  Tensor weight;              // (out, in...) float32, or bfloat16 until pack_bf16()
  Tensor bias;                // (out) float32
  gemm::PackedBF16 packed;    // the weight for the bf16 kernel; `weight` is then empty

  int64_t out() const { return packed.empty() ? weight.dim(0) : packed.out(); }
  int64_t in() const { return packed.empty() ? weight.size() / weight.dim(0) : packed.in(); }
  // y (rows, out) = x (rows, in) · Wᵀ + b: the packed bf16 kernel when packed, else the
  // process-wide GEMM (dit/gemm.h) on the float32 weight.
  void apply(const float* x, int64_t rows, float* y) const;
  // Packs a bfloat16 weight for the bf16 kernel and releases it (a float32 weight is left as
  // it is).
  void pack_bf16();
};

struct BlockWeights {
  Tensor modulation;                       // (1, 6, D)
  LinearWeights sa_q, sa_k, sa_v, sa_o;    // (D, D)
  Tensor sa_norm_q, sa_norm_k;             // (D)
  Tensor norm3_w, norm3_b;                 // (D)
  LinearWeights ca_q, ca_k, ca_v, ca_o;    // (D, D), k/v: (D, D) from context width D
  Tensor ca_norm_q, ca_norm_k;             // (D)
  LinearWeights ffn0;                      // (F, D)
  LinearWeights ffn2;                      // (D, F)
};

struct DiTWeights {
  LinearWeights patch;            // weight (D, C, pt, ph, pw), bias (D)
  LinearWeights time0, time2;     // (D, freq_dim), (D, D)
  LinearWeights time_proj;        // (6D, D)
  LinearWeights text0, text2;     // (D, E), (D, D)
  Tensor label_embedding;         // (num_classes + 1, E), labels model only
  Tensor label_position;          // (L, E), labels model only
  Tensor head_modulation;         // (1, 2, D)
  LinearWeights head;             // (P, D)
  std::vector<BlockWeights> blocks;

  struct Entry {
    std::string name;
    std::vector<int64_t> shape;
    Tensor* tensor;
  };
  // Every linear layer (fixed order), for packing.
  std::vector<LinearWeights*> linears();
  // Allocates nothing; lists every tensor the config requires with its expected shape.
  std::vector<Entry> tensor_table(const DiTConfig& cfg);
  // Allocates every tensor at its shape (contents unspecified).
  void allocate(const DiTConfig& cfg);
  // Deterministic small random weights (tests and the built-in tiny model).
  static DiTWeights random(const DiTConfig& cfg, uint64_t seed);
  int64_t parameter_count(const DiTConfig& cfg);
};

}  // namespace ditgen
