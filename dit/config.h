#pragma once
// DiTConfig: every hyper-parameter of the model, read from the weight file (docs/model.md §1)
// and passed by const reference to every layer.
#include <cstdint>
#include <string>
#include <vector>

#include "core/shape.h"

namespace ditgen {

struct DiTConfig {
  int in_channels = 1;  // C
  int patch_t = 1, patch_h = 4, patch_w = 4;
  int dim = 256;        // D
  int ffn_dim = 768;    // F
  int num_heads = 4;    // NH
  int num_layers = 8;
  int freq_dim = 256;
  int ctx_len = 2;      // L
  int ctx_dim = 256;    // E
  int num_classes = 10; // 0: raw context from a file
  double eps = 1e-6;
  double rope_theta = 10000.0;
  double sample_shift = 3.0;
  int sample_steps = 20;
  double sample_cfg = 4.0;
  int frame_height = 64, frame_width = 64;

  int head_dim() const { return dim / num_heads; }           // Dh
  int patch_values() const { return patch_t * patch_h * patch_w * in_channels; }  // P
  // RoPE widths in real dims per axis (docs/model.md §6).
  int rope_dims_t() const { return head_dim() - 4 * (head_dim() / 6); }
  int rope_dims_hw() const { return 2 * (head_dim() / 6); }

  // Throws std::invalid_argument naming the first bad value and its allowed range.
  void validate() const;
  // Throws std::invalid_argument unless every side of `s` is positive and divisible by its patch.
  void validate(const LatentShape& s) const;
  int64_t tokens(const LatentShape& s) const {  // N
    return int64_t(s.frames / patch_t) * (s.height / patch_h) * (s.width / patch_w);
  }

  // Integer and float fields as (name, value) pairs, in documentation order.
  std::vector<std::pair<std::string, double>> fields() const;
  // Sets a field by name; returns false for an unknown name.
  bool set_field(const std::string& name, double value);
};


}  // namespace ditgen
