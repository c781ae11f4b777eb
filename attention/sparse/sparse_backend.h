#pragma once
// The dispatcher every sparse method shares: per call it picks a dense, anchor or sparse pass
// from the dense-to-sparse schedule (schedule.h), adds the residual of refresh=K (residual.h),
// estimates the switch of dense_steps=auto on sampled rows (probe.cpp) and keeps the run's
// accounting (accounting.h). A method supplies its map (static methods) or its whole sparse pass
// (dynamic methods); its keys are read through keys.h.
#include <array>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "attention/backend.h"
#include "attention/mask/mask.h"
#include "attention/sparse/accounting.h"
#include "attention/sparse/keys.h"
#include "attention/sparse/residual.h"
#include "attention/sparse/schedule.h"

namespace ditgen::attn {

class SparseBackend : public AttentionBackend {
 public:
  // The kernel path is common.isa (read_common defaults it to opt.isa); opt gives the threads.
  SparseBackend(std::string method, const CommonOptions& common, KernelOptions opt);
  AttendReport attend(const AttentionInputs& in, float* out, const AttentionContext& ctx) final;
  std::string spec() const override { return spec_; }
  TokenLayout layout(int tp, int hp, int wp) const override;
  std::string report_json() const override;
  // The residuals of refresh=K: one (B*NH, N, Dh) buffer per layer that is not always dense.
  int64_t state_bytes(int64_t tokens, int batch, int heads, int head_dim, int num_layers) const override;
  // refresh=K's anchor steps: a skipped anchor would leave the stale residual in use.
  bool pinned_step(int step, int num_steps) const override {
    return !plan_.dense && common_.schedule.anchor_step(step, num_steps);
  }

  const std::string& method() const { return method_; }
  // Set once by the factory: the spec with every key spelled out.
  void set_spec_string(std::string s) { spec_ = std::move(s); }
  const CommonOptions& common() const { return common_; }
  // The maps the method uses on this layout (static methods), or its candidate masks
  // (dynamic methods), named, for `ditgen masks`.
  virtual std::vector<std::pair<std::string, BlockMap>> preview(const TokenLayout& layout);
  // Per-layer step at which dense_steps=auto switched to sparse (-1: not yet).
  const std::vector<int>& auto_switch_steps() const { return auto_.switch_steps(); }

 protected:
  // Static methods: the map for this layout, with num_maps >= 1 and head_map over NH or B*NH.
  virtual BlockMap build_map(const TokenLayout& layout);
  virtual bool is_static() const { return true; }
  // One sparse pass: what it computed. Default: the cached static map.
  virtual AttendReport sparse_attend(const AttentionInputs& in, float* out, const AttentionContext& ctx);
  // Method-specific entries of report_json().
  virtual void report(nlohmann::json& j) const {}
  const BlockMap& static_map(const TokenLayout& layout);
  const AttentionKernel& kernel() const { return kernel_; }
  // Whether this call is the first of a run (the step went back, or another model depth).
  bool new_run() const { return new_run_; }

 private:
  void dense_pass(const AttentionInputs& in, float* out);
  // Relative L2 error of the sparse pass against `dense_out` on sampled rows (probe.cpp).
  double auto_estimate(const AttentionInputs& in, const float* dense_out, const AttentionContext& ctx);
  // An anchor step of a static method in one walk over the blocks: the map's blocks and the
  // rest (complement) each with their log-sum-exp, merged into the dense output in `out`; r
  // gets dense - sparse. Returns the pairs computed (partial blocks count twice).
  double one_walk_anchor(const AttentionInputs& in, float* out, std::vector<float>& r);
  const BlockMap& complement_map(const TokenLayout& layout);
  // Whether this run's plan (static map, fixed schedule) computes at least as many blocks as
  // dense attention over its steps, anchors counted twice: then the whole run attends densely.
  bool plan_costs_dense(const TokenLayout& layout, int num_steps);

  std::string method_, spec_;
  CommonOptions common_;
  AttentionKernel kernel_;
  MapCache cache_;
  BlockMap dense_map_;
  AutoSwitch auto_;
  ResidualCache residual_;
  std::vector<float> scratch_;
  std::vector<float> lse_;  // (2, B*NH, N): the two parts of a one-walk anchor
  Accounting accounting_;
  int last_step_ = -1, run_layers_ = -1;
  bool new_run_ = true;
  struct Plan {
    std::array<int, 3> grid{-1, -1, -1};  // (Tp, Hp, Wp) the plan was made for
    int num_steps = -1;
    double cost = 0;  // blocks computed over the run, in dense steps
    bool dense = false;
  } plan_;
};

}  // namespace ditgen::attn
