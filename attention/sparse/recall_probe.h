#pragma once
// RecallProbe: wraps a backend and measures its attention recall, the share of the exact
// softmax mass that the mask keeps, on a few sampled query rows per head and call, averaged
// per layer. Its own cost is timed apart so callers can remove it from their timings.
#include <functional>
#include <memory>
#include <vector>

#include "attention/backend.h"

namespace ditgen::attn {

class RecallProbe : public AttentionBackend {
 public:
  RecallProbe(AttentionBackend& inner, int rows_per_head, uint64_t seed);
  AttendReport attend(const AttentionInputs& in, float* out, const AttentionContext& ctx) override;
  std::string spec() const override { return inner_.spec(); }
  TokenLayout layout(int tp, int hp, int wp) const override { return inner_.layout(tp, hp, wp); }
  std::string report_json() const override { return inner_.report_json(); }
  int64_t state_bytes(int64_t tokens, int batch, int heads, int head_dim, int num_layers) const override {
    return inner_.state_bytes(tokens, batch, heads, head_dim, num_layers);
  }
  bool pinned_step(int step, int num_steps) const override { return inner_.pinned_step(step, num_steps); }

  // Mean recall per layer over all calls (1 where the layer was never probed).
  std::vector<double> layer_recall() const;
  double mean_recall() const;
  double probe_seconds() const { return probe_seconds_; }

 private:
  AttentionBackend& inner_;
  int rows_;
  uint64_t seed_;
  uint64_t calls_ = 0;
  std::vector<double> sum_, count_;
  double probe_seconds_ = 0;
};

// Exact softmax mass of query row q of one head that falls on keys `keep` says are kept.
// q_row: (Dh), keys: (N, Dh). Double accumulation.
double kept_mass(const float* q_row, const float* keys, int64_t tokens, int head_dim,
                 const std::function<bool(int64_t)>& keep);

}  // namespace ditgen::attn
