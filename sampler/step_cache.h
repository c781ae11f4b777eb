#pragma once
// Step caching (--cache SPEC): skip whole model evaluations on steps where the model's output is
// predicted to change little, and reuse the last computed transformation Delta = out - x.
//
// The rule is EasyCache's (Zhou et al. 2025, arXiv 2507.02860, as its Wan2.1 script applies it):
//  - the first `warmup` steps and the last step always run the model;
//  - at a computed step c that follows another computed step p, the transformation rate
//      k = mean|o_c - o_p| / mean|x_c - x_p|   (x: model input, o: conditional output);
//  - at a later step t the predicted relative change of the output is
//      eps_t = k mean|x_t - x_{t-1}| / mean|o_c|,
//    summed over the steps since the last computed one; while the sum stays under `thresh` the
//    step is skipped and every batch element b (conditional, unconditional) gets x_t + Delta_b,
//    else the model runs and the sum restarts.
// reuse=output and reuse=extrapolate keep the rule and change what a skipped step returns: the
// last computed output (whose error is the output's own change, which is what eps_t predicts),
// or its first-order extrapolation in sigma through the last two computed outputs (docs/caching.md
// says why EasyCache's x_t + Delta is poor on a model whose rate k is far below 1).
// No offline calibration (TeaCache's fitted polynomial) is needed: k is measured in the run.
// Knows nothing of the model: the caller asks compute() and then runs it, or calls reuse().
#include <cstdint>
#include <string>
#include <vector>

#include "core/numbers.h"

namespace ditgen::sampler {

struct CacheSpec {
  enum class Kind { Off, Easy };
  Kind kind = Kind::Off;
  double thresh = 0.05;        // easy: accumulated predicted change allowed between computed steps
  StepCount warmup{0, 0.2};     // steps always computed first: a count or a fraction of the run
  int max_skip = -1;           // consecutive skipped steps allowed (-1: no limit)
  // What a skipped step returns: x_t + Delta (EasyCache), the last computed output, or the
  // line through the last two computed outputs, in sigma, evaluated at the step's sigma.
  enum class Reuse { Delta, Output, Extrapolate };
  Reuse reuse = Reuse::Delta;

  // "off", "easy", or "easy:key=value,..." with keys thresh (> 0), warmup (a StepCount),
  // max_skip (>= 0), reuse (delta, output, extrapolate). Throws std::invalid_argument naming the
  // bad part and what was expected.
  static CacheSpec parse(const std::string& text);
  // Canonical text with every key spelled out ("off" or "easy:thresh=0.05,warmup=0.2,...").
  std::string str() const;
  bool enabled() const { return kind != Kind::Off; }
  int warmup_steps(int steps) const;
};

class StepCache {
 public:
  // n: floats of one model input; batch: output blocks of n floats per evaluation (cond first).
  StepCache(const CacheSpec& spec, int64_t n, int batch);
  // Before step `step` of `steps` with model input x (n floats): whether the model must run.
  // `pinned`: the caller needs this step computed (an attention anchor step). Call once per
  // step, in order; then store() after running the model, or reuse() in its place.
  bool compute(const float* x, int step, int steps, bool pinned);
  // After a computed step: x the input at noise level sigma, out its batch blocks of n floats.
  void store(const float* x, double sigma, const float* out);
  // On a skipped step at noise level sigma: fills the batch blocks of out (see CacheSpec::Reuse).
  void reuse(const float* x, double sigma, float* out) const;

  const std::vector<int>& skipped_steps() const { return skipped_; }
  int computed_steps() const { return computed_; }
  // The last transformation rate k measured (NaN before two computed steps).
  double rate() const { return k_; }

 private:
  CacheSpec spec_;
  int64_t n_;
  int batch_;
  std::vector<float> out_comp_;  // (batch, n): the output of the last computed step
  std::vector<float> out_prev_;  // (batch, n): of the one before (reuse=extrapolate only)
  std::vector<float> x_comp_;    // (n): the input of the last computed step
  std::vector<float> x_step_;    // (n): the input of the previous step, computed or not
  double sigma_comp_ = 0, sigma_prev_ = 0;
  double out_norm_ = 0;  // mean |out| of the last computed step's first block
  double k_;
  double accumulated_ = 0;
  int run_of_skips_ = 0, computed_ = 0;
  std::vector<int> skipped_;
};

// mean_j |a_j - b_j| (b null: mean |a_j|), summed in double over fixed chunks in a fixed order,
// so the value does not depend on the thread count. 0 for n = 0.
double mean_abs_diff(const float* a, const float* b, int64_t n);

}  // namespace ditgen::sampler
