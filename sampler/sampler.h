#pragma once
// Flow-matching sampler (docs/model.md sections 8 and 9): sigma schedule with the Wan timestep
// shift, ODE solvers (Euler, UniPC bh2, DPM-Solver++(2M)), classifier-free guidance, and the
// seeded noise generator. Knows nothing of the model: solvers call a velocity callback.
//
// Conventions: x_sigma = (1 - sigma) x0 + sigma eps, sigma runs from ~1 (noise) to 0 (data),
// the model predicts the velocity v = eps - x0, and x0 is recovered as m = x - sigma v.
// Coefficients are computed in double; arrays are float. Every array update is elementwise
// (OpenMP over the elements), so results are bit-identical for any thread count.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace ditgen::sampler {

// ---- Schedule (docs/model.md section 8) --------------------------------------------------

// shift(sigma) = s sigma / (1 + (s - 1) sigma). Throws std::invalid_argument unless s > 0.
double shift_sigma(double sigma, double shift);

// sigma_i = shift(0.999 (1 - i/steps)) for i < steps, sigma_steps = 0; size steps + 1,
// strictly decreasing. Throws std::invalid_argument unless steps >= 1 and shift > 0.
std::vector<double> flow_sigmas(int steps, double shift);

// The timestep the model is conditioned on: 1000 sigma (continuous, no truncation).
inline double sigma_to_timestep(double sigma) { return 1000.0 * sigma; }

// ---- Solvers -------------------------------------------------------------------------------

enum class Solver { Euler, UniPC, DpmPP2M };

// "euler", "unipc", "dpm++2m" (exact spelling). Throws std::invalid_argument naming the value
// and the choices.
Solver parse_solver(const std::string& name);
std::string solver_name(Solver solver);
// The accepted names, for --help texts: "euler, unipc, dpm++2m".
std::string solver_choices();

// Velocity callback: fill v (n floats) with the model's (already guided) velocity at x, sigma;
// step is the 0-based step index. x must not be modified. v never aliases x.
using Velocity = std::function<void(const float* x, double sigma, int step, float* v)>;

// Called after each step with (step index just finished, steps, current x); may throw to abort
// (e.g. interruption, NaN guard): the exception propagates out of sample().
using StepHook = std::function<void(int step, int steps, const float* x)>;

// Integrates x (n floats; in: the initial noise at sigmas[0], out: the sample at the last
// sigma, normally 0) in place. steps = sigmas.size() - 1 and the velocity is evaluated exactly
// once per step, at sigmas[0..steps-1] (never at the final sigma).
//  - Euler:   x <- x + (sigma_{i+1} - sigma_i) v.
//  - UniPC:   bh2, order 2, x0-prediction, corrector always on, lower-order final, as Wan2.1's
//             FlowUniPCMultistepScheduler; a final sigma of 0 gives x = m_{N-1} exactly.
//  - DpmPP2M: DPM-Solver++(2M), x0/lambda form, first and last steps first order.
// Requirements (std::invalid_argument otherwise): at least 2 sigmas, all finite, sigmas[0] <= 1,
// strictly decreasing, the last >= 0; n >= 0; a velocity callback.
// Working memory: Euler n floats, DpmPP2M 2n, UniPC 4n.
void sample(Solver solver, float* x, int64_t n, const std::vector<double>& sigmas,
            const Velocity& velocity, const StepHook& hook = {});

// ---- Classifier-free guidance --------------------------------------------------------------

// v = v_u + scale (v_c - v_u). Batched layout: the caller evaluates the conditional and the
// unconditional pass as one batch of 2, conditional first (batch 0), unconditional second.
class Guidance {
 public:
  // Throws std::invalid_argument unless scale is finite.
  explicit Guidance(double scale);
  double scale() const { return scale_; }
  // False for scale 1: the unconditional pass is not needed (batch 1, cond only).
  bool active() const { return scale_ != 1.0; }
  // Batch size the model must be run with: 2 when active, else 1.
  int batch() const { return active() ? 2 : 1; }
  // out may alias v_cond or v_uncond. Scale 1 copies v_cond, scale 0 copies v_uncond exactly.
  void combine(const float* v_cond, const float* v_uncond, float* out, int64_t n) const;
  // v_batch holds batch() blocks of n floats (cond, then uncond when active); out gets n floats
  // and may alias v_batch.
  void combine_batched(const float* v_batch, float* out, int64_t n) const;

 private:
  double scale_;
};

// ---- Noise (docs/model.md section 9) -------------------------------------------------------

// Standard normal float32 noise from a splitmix64-keyed counter and Box-Muller (cos branch).
// Element i of the output is the noise of flat index offset + i (flat index into x[T][H][W][C],
// C fastest; batch b starts at b*T*H*W*C). Bit-identical for any thread count and any split of
// the range into calls. Throws std::invalid_argument for n < 0 or offset < 0.
void gaussian_noise(uint64_t seed, float* out, int64_t n, int64_t offset = 0);

}  // namespace ditgen::sampler
