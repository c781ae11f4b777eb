// ODE solvers for flow matching (docs/model.md section 8): Euler, UniPC (bh2, order 2,
// x0-prediction, corrector on, lower-order final, as Wan2.1's FlowUniPCMultistepScheduler) and
// DPM-Solver++(2M). Notation: alpha = 1 - sigma, lambda = ln alpha - ln sigma, m = x - sigma v
// (the x0 prediction). Coefficients in double; each array update is one elementwise pass
// out[j] = float(cx x[j] + sum_k c_k m_k[j]) evaluated in double in a fixed order, so the bits do
// not depend on the thread count (the library is built with -ffp-contract=off).
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "sampler/sampler.h"

namespace ditgen::sampler {

Solver parse_solver(const std::string& name) {
  if (name == "euler") return Solver::Euler;
  if (name == "unipc") return Solver::UniPC;
  if (name == "dpm++2m") return Solver::DpmPP2M;
  throw std::invalid_argument("unknown solver '" + name + "' (choices: " + solver_choices() + ")");
}

std::string solver_name(Solver solver) {
  switch (solver) {
    case Solver::Euler: return "euler";
    case Solver::UniPC: return "unipc";
    case Solver::DpmPP2M: return "dpm++2m";
  }
  throw std::invalid_argument("solver_name: invalid Solver value");
}

std::string solver_choices() { return "euler, unipc, dpm++2m"; }

namespace {

constexpr int64_t kParallelMin = 32768;  // below this the elementwise passes run serially

double lambda_of(double sigma) { return std::log1p(-sigma) - std::log(sigma); }  // -inf at 1
// phi = e^{-h} - 1; h = +inf when the step starts at sigma = 1 (alpha = 0).
double phi_of(double h) { return std::isfinite(h) ? std::expm1(-h) : -1.0; }

void copy(float* out, const float* in, int64_t n) {
  if (out == in) return;
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (int64_t j = 0; j < n; ++j) out[j] = in[j];
}

// m <- x - sigma v, in place in the buffer that holds v.
void to_x0(float* mv, const float* x, double sigma, int64_t n) {
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (int64_t j = 0; j < n; ++j)
    mv[j] = static_cast<float>(static_cast<double>(x[j]) - sigma * static_cast<double>(mv[j]));
}

// out <- cx x + c0 m0 [+ c1 m1 [+ c2 m2]]; K = number of m terms used; out may alias x.
template <int K>
void lincomb(float* out, const float* x, double cx, const float* const m[3], const double c[3], int64_t n) {
  const float* m0 = m[0];
  const float* m1 = m[1];
  const float* m2 = m[2];
  const double c0 = c[0], c1 = c[1], c2 = c[2];
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (int64_t j = 0; j < n; ++j) {
    double acc = cx * static_cast<double>(x[j]);
    acc += c0 * static_cast<double>(m0[j]);
    if constexpr (K >= 2) acc += c1 * static_cast<double>(m1[j]);
    if constexpr (K >= 3) acc += c2 * static_cast<double>(m2[j]);
    out[j] = static_cast<float>(acc);
  }
}

void lincomb(int k, float* out, const float* x, double cx, const float* const m[3], const double c[3], int64_t n) {
  switch (k) {
    case 1: lincomb<1>(out, x, cx, m, c, n); break;
    case 2: lincomb<2>(out, x, cx, m, c, n); break;
    default: lincomb<3>(out, x, cx, m, c, n); break;
  }
}

void check_args(float* x, int64_t n, const std::vector<double>& s, const Velocity& velocity) {
  if (n < 0) throw std::invalid_argument("sampler: negative element count");
  if (n > 0 && x == nullptr) throw std::invalid_argument("sampler: null sample array");
  if (!velocity) throw std::invalid_argument("sampler: no velocity callback");
  if (s.size() < 2) throw std::invalid_argument("sampler: need at least 2 sigmas (1 step), got " + std::to_string(s.size()));
  for (size_t i = 0; i < s.size(); ++i) {
    if (!std::isfinite(s[i]))
      throw std::invalid_argument("sampler: sigma[" + std::to_string(i) + "] is not finite");
    if (i > 0 && !(s[i] < s[i - 1]))
      throw std::invalid_argument("sampler: sigmas must be strictly decreasing (sigma[" + std::to_string(i) +
                                  "] = " + std::to_string(s[i]) + " >= sigma[" + std::to_string(i - 1) +
                                  "] = " + std::to_string(s[i - 1]) + ")");
  }
  if (s.front() > 1.0) throw std::invalid_argument("sampler: sigma[0] = " + std::to_string(s.front()) + " > 1");
  if (s.back() < 0.0) throw std::invalid_argument("sampler: final sigma " + std::to_string(s.back()) + " < 0");
}

void sample_euler(float* x, int64_t n, const std::vector<double>& s, const Velocity& velocity, const StepHook& hook) {
  const int steps = static_cast<int>(s.size()) - 1;
  std::vector<float> v(static_cast<size_t>(n));
  for (int i = 0; i < steps; ++i) {
    velocity(x, s[i], i, v.data());
    const double ds = s[i + 1] - s[i];
    const float* vp = v.data();
#pragma omp parallel for schedule(static) if (n > kParallelMin)
    for (int64_t j = 0; j < n; ++j)
      x[j] = static_cast<float>(static_cast<double>(x[j]) + ds * static_cast<double>(vp[j]));
    if (hook) hook(i, steps, x);
  }
}

// DPM-Solver++(2M), data prediction, multistep, first and last steps first order.
//   x_{i+1} = (sigma_{i+1}/sigma_i) x_i - alpha_{i+1} phi m_i - 0.5 alpha_{i+1} phi (m_i - m_{i-1}) / r0,
//   h = lambda_{i+1} - lambda_i, phi = e^{-h} - 1, r0 = (lambda_i - lambda_{i-1}) / h.
void sample_dpmpp2m(float* x, int64_t n, const std::vector<double>& s, const Velocity& velocity, const StepHook& hook) {
  const int steps = static_cast<int>(s.size()) - 1;
  std::vector<float> buf(2 * static_cast<size_t>(n));
  float* slot[2] = {buf.data(), buf.data() + n};
  for (int i = 0; i < steps; ++i) {
    float* mi = slot[i % 2];
    const float* mprev = slot[(i + 1) % 2];
    velocity(x, s[i], i, mi);
    to_x0(mi, x, s[i], n);
    const int order = std::min({2, steps - i, i + 1});
    if (s[i + 1] == 0.0) {
      copy(x, mi, n);  // lambda_{i+1} = inf: the step lands on the x0 prediction
    } else {
      const double st = s[i + 1], at = 1.0 - st;
      const double h = lambda_of(st) - lambda_of(s[i]);
      const double phi = phi_of(h);
      const float* m[3] = {mi, mprev, nullptr};
      double c[3] = {-at * phi, 0.0, 0.0};
      int k = 1;
      if (order == 2) {
        const double r0 = (lambda_of(s[i]) - lambda_of(s[i - 1])) / h;
        if (std::isfinite(r0) && r0 != 0.0) {  // r0 = inf when sigma_{i-1} = 1: the term vanishes
          const double cd = -0.5 * at * phi / r0;
          c[0] += cd;
          c[1] = -cd;
          k = 2;
        }
      }
      lincomb(k, x, x, st / s[i], m, c, n);
    }
    if (hook) hook(i, steps, x);
  }
}

// UniPC, bh2 (B(h) = e^{-h} - 1), order 2, x0-prediction, corrector on, lower-order final.
// See the shared Wan2.1 fact sheet, section 7, for the formulas in this notation.
void sample_unipc(float* x, int64_t n, const std::vector<double>& s, const Velocity& velocity, const StepHook& hook) {
  const int steps = static_cast<int>(s.size()) - 1;
  std::vector<float> buf(4 * static_cast<size_t>(n));
  float* slot[3] = {buf.data(), buf.data() + n, buf.data() + 2 * n};
  float* xc = buf.data() + 3 * n;  // x_i: the corrected sample the predictor starts from
  std::vector<double> lam(s.size());
  for (size_t i = 0; i + 1 < s.size(); ++i) lam[i] = lambda_of(s[i]);
  int prev_order = 0;
  for (int i = 0; i < steps; ++i) {
    float* mi = slot[i % 3];
    const float* m1 = slot[(i + 2) % 3];  // m_{i-1}
    const float* m2 = slot[(i + 1) % 3];  // m_{i-2}
    // The model always sees the uncorrected (predicted) sample.
    velocity(x, s[i], i, mi);
    to_x0(mi, x, s[i], n);

    // Corrector (UniC): x_i from x_{i-1}, m_{i-1}, m_i (and m_{i-2} at order 2).
    if (i == 0) {
      copy(xc, x, n);
    } else {
      const double st = s[i], at = 1.0 - st;
      const double h = lam[i] - lam[i - 1];
      const double phi = phi_of(h), B = phi;
      // base = (sigma_i/sigma_{i-1}) x_{i-1} - alpha_i phi m_{i-1}
      const float* m[3] = {mi, m1, m2};
      double c[3] = {0.0, -at * phi, 0.0};
      int k = 2;
      if (prev_order == 2 && std::isfinite(h)) {
        const double g1 = phi / (-h) - 1.0;
        const double b0 = g1 / B;
        const double b1 = 2.0 * (g1 / (-h) - 0.5) / B;
        const double r = (lam[i - 2] - lam[i - 1]) / h;
        // Solve [1 1; r 1] (rho0, rho1) = (b0, b1). r = -inf when sigma_{i-2} = 1: rho0 -> 0.
        const double rho0 = std::isfinite(r) ? (b0 - b1) / (1.0 - r) : 0.0;
        const double rho1 = b0 - rho0;
        // - alpha_i B (rho0 (m_{i-2} - m_{i-1}) / r + rho1 (m_i - m_{i-1}))
        const double ce = -at * B * rho1;
        c[0] = ce;
        c[1] -= ce;
        if (rho0 != 0.0) {
          const double cd = -at * B * rho0 / r;
          c[2] = cd;
          c[1] -= cd;
          k = 3;
        }
      } else {
        // Order 1: - alpha_i B 0.5 (m_i - m_{i-1})
        const double ce = -0.5 * at * B;
        c[0] = ce;
        c[1] -= ce;
      }
      lincomb(k, xc, xc, st / s[i - 1], m, c, n);
    }

    // Predictor (UniP): x~_{i+1} from x_i, m_i (and m_{i-1} at order 2).
    const int order = std::min({2, steps - i, i + 1});
    if (s[i + 1] == 0.0) {
      copy(x, mi, n);  // lambda_{i+1} = inf: x~_N = m_{N-1}
    } else {
      const double st = s[i + 1], at = 1.0 - st;
      const double h = lambda_of(st) - lam[i];
      const double phi = phi_of(h), B = phi;
      const float* m[3] = {mi, m1, nullptr};
      double c[3] = {-at * phi, 0.0, 0.0};
      int k = 1;
      if (order == 2) {
        const double r = (lam[i - 1] - lam[i]) / h;
        if (std::isfinite(r) && r != 0.0) {
          // - alpha_{i+1} B 0.5 (m_{i-1} - m_i) / r
          const double cd = -0.5 * at * B / r;
          c[1] = cd;
          c[0] -= cd;
          k = 2;
        }
      }
      lincomb(k, x, xc, st / s[i], m, c, n);
    }
    prev_order = order;
    if (hook) hook(i, steps, x);
  }
}

}  // namespace

void sample(Solver solver, float* x, int64_t n, const std::vector<double>& sigmas, const Velocity& velocity,
            const StepHook& hook) {
  check_args(x, n, sigmas, velocity);
  switch (solver) {
    case Solver::Euler: sample_euler(x, n, sigmas, velocity, hook); return;
    case Solver::UniPC: sample_unipc(x, n, sigmas, velocity, hook); return;
    case Solver::DpmPP2M: sample_dpmpp2m(x, n, sigmas, velocity, hook); return;
  }
  throw std::invalid_argument("sampler: invalid Solver value");
}

}  // namespace ditgen::sampler
