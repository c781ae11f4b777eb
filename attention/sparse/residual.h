#pragma once
// Residual reuse across sampler steps (the refresh key, see schedule.h): per layer, the
// difference R = dense - sparse measured at the last anchor step, added to the sparse output of
// the steps between anchors.
#include <cstddef>
#include <vector>

namespace ditgen::attn {

class ResidualCache {
 public:
  // A new run (SparseBackend::attend detects it): forgets every residual.
  void reset(int num_layers);
  // The buffer of `layer`, sized to `elements` (B*NH*N*Dh), for an anchor step to fill.
  std::vector<float>& store(int layer, size_t elements);
  // The residual of `layer` stored in this run, or nullptr (none yet, or another shape).
  const std::vector<float>* find(int layer, size_t elements) const;
  // At an anchor step: r holds the sparse output on entry and dense - sparse on return.
  static void finish_anchor(const float* dense, std::vector<float>& r);
  // out += r.
  static void add(float* out, const std::vector<float>& r);

 private:
  std::vector<std::vector<float>> r_;  // per layer: (B*NH, N, Dh)
  std::vector<char> valid_;            // per layer: stored in this run
};

}  // namespace ditgen::attn
