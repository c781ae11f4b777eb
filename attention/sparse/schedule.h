#pragma once
// Step-aware dense-to-sparse switching shared by every sparse method.
//   dense_steps = N      the first N sampler steps run dense
//   dense_steps = 0.25   the first floor(0.25 * num_steps) steps run dense (a number with a '.')
//   dense_steps = auto   each layer runs dense until a sampled-row estimate of the sparse output's
//                        relative error against dense falls to auto_tol or under, then sparse
//   dense_layers = N     the first N layers always run dense
//   refresh = K          residual reuse: the last dense step and every K-th step after it are
//                        anchor steps, which run dense and sparse and keep R = dense - sparse per
//                        layer; the steps between run sparse and add R. The far-field share of
//                        the output that the mask drops changes slowly across steps, so R stands
//                        in for it (0: off; needs a fixed dense_steps)
#include <string>
#include <vector>

#include "core/numbers.h"

namespace ditgen::attn {

struct DenseSchedule {
  enum class Kind { Fixed, Auto };
  Kind kind = Kind::Fixed;
  StepCount steps;  // Fixed: a count or a fraction of the run
  int dense_layers = 0;
  double auto_tol = 0.05;  // relative L2 error of the sampled rows
  int auto_rows = 64;      // query rows sampled per estimate
  int refresh = 0;         // steps from one anchor step to the next (0: no residual reuse)

  // Throws std::invalid_argument naming the bad value.
  static DenseSchedule parse(const std::string& dense_steps, int dense_layers);
  std::string steps_str() const;  // canonical dense_steps text
  // Steps run dense under a fixed schedule for a run of num_steps (Auto: 0).
  int fixed_dense_steps(int num_steps) const;
  bool layer_dense(int layer) const { return layer < dense_layers; }
  // With refresh > 0: whether `step` is an anchor step (dense and sparse, residual stored).
  bool anchor_step(int step, int num_steps) const;
};

// Per-layer state of dense_steps=auto: the step at which each layer switched (-1: not yet).
class AutoSwitch {
 public:
  // A new run (SparseBackend::attend detects it): no layer has switched.
  void reset(int num_layers);
  bool switched(int layer) const;
  int switch_step(int layer) const;  // first step run sparse, or -1
  void record(int layer, int step, double error, bool switch_now);
  const std::vector<int>& switch_steps() const { return switch_step_; }
  const std::vector<double>& last_errors() const { return last_error_; }

 private:
  std::vector<int> switch_step_;
  std::vector<double> last_error_;
};

}  // namespace ditgen::attn
