// Step caching by EasyCache's rule (step_cache.h).
#include "sampler/step_cache.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <stdexcept>

#include "core/key_values.h"

namespace ditgen::sampler {

namespace {

constexpr int64_t kChunk = 16384;  // summation chunk: fixed, so sums do not depend on threads

double parse_number(const std::string& text, const std::string& key, const std::string& value) {
  const auto v = parse_finite(value);
  if (!v) throw std::invalid_argument("cache spec '" + text + "': " + key + " = '" + value + "' is not a number");
  return *v;
}

int parse_count(const std::string& text, const std::string& key, const std::string& value) {
  const auto v = parse_int(value);
  if (!v || *v < 0)
    throw std::invalid_argument("cache spec '" + text + "': " + key + " = '" + value + "' must be a whole number >= 0");
  return *v;
}

}  // namespace

CacheSpec CacheSpec::parse(const std::string& text) {
  CacheSpec s;
  if (text == "off") return s;
  const size_t colon = text.find(':');
  const std::string name = text.substr(0, colon);
  if (name != "easy")
    throw std::invalid_argument("unknown cache method '" + name + "' in '" + text + "' (choices: off, easy)");
  s.kind = Kind::Easy;
  if (colon == std::string::npos) return s;
  for (const auto& [key, value] : parse_key_values(text, text.substr(colon + 1), "cache spec")) {
    if (key == "thresh") {
      s.thresh = parse_number(text, key, value);
      if (!(s.thresh > 0))
        throw std::invalid_argument("cache spec '" + text + "': thresh = " + value + " must be > 0");
    } else if (key == "warmup") {
      try {
        s.warmup = StepCount::parse(value);
      } catch (const std::invalid_argument& e) {
        throw std::invalid_argument("cache spec '" + text + "': warmup = " + e.what());
      }
    } else if (key == "reuse") {
      if (value == "delta") {
        s.reuse = Reuse::Delta;
      } else if (value == "output") {
        s.reuse = Reuse::Output;
      } else if (value == "extrapolate") {
        s.reuse = Reuse::Extrapolate;
      } else {
        throw std::invalid_argument("cache spec '" + text + "': reuse = '" + value + "' (expected delta, output or extrapolate)");
      }
    } else if (key == "max_skip") {
      s.max_skip = parse_count(text, key, value);
    } else {
      throw std::invalid_argument("cache spec '" + text + "': unknown key '" + key +
                                  "' (keys of easy: thresh, warmup, max_skip, reuse)");
    }
  }
  return s;
}

std::string CacheSpec::str() const {
  if (kind == Kind::Off) return "off";
  std::ostringstream o;
  o << "easy:thresh=" << thresh << ",warmup=" << warmup.str();
  if (max_skip >= 0) o << ",max_skip=" << max_skip;
  o << ",reuse=" << (reuse == Reuse::Delta ? "delta" : reuse == Reuse::Output ? "output" : "extrapolate");
  return o.str();
}

int CacheSpec::warmup_steps(int steps) const { return warmup.of(steps); }

double mean_abs_diff(const float* a, const float* b, int64_t n) {
  if (n <= 0) return 0;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<double> part(size_t(chunks), 0.0);
#pragma omp parallel for schedule(static) if (chunks > 1)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t lo = c * kChunk, hi = std::min(n, lo + kChunk);
    double s = 0;
    if (b) {
      for (int64_t j = lo; j < hi; ++j) s += std::fabs(double(a[j]) - double(b[j]));
    } else {
      for (int64_t j = lo; j < hi; ++j) s += std::fabs(double(a[j]));
    }
    part[size_t(c)] = s;
  }
  double total = 0;
  for (double s : part) total += s;
  return total / double(n);
}

StepCache::StepCache(const CacheSpec& spec, int64_t n, int batch)
    : spec_(spec), n_(n), batch_(batch), k_(std::numeric_limits<double>::quiet_NaN()) {
  if (n < 0 || batch < 1)
    throw std::invalid_argument("step cache: n = " + std::to_string(n) + ", batch = " + std::to_string(batch) +
                                " (expected n >= 0, batch >= 1)");
  if (!spec.enabled()) return;
  out_comp_.resize(size_t(batch) * size_t(n));
  if (spec.reuse == CacheSpec::Reuse::Extrapolate) out_prev_.resize(out_comp_.size());
  x_step_.resize(size_t(n));
  x_comp_.resize(size_t(n));
}

bool StepCache::compute(const float* x, int step, int steps, bool pinned) {
  if (!spec_.enabled()) return true;
  bool run = pinned || step < spec_.warmup_steps(steps) || step >= steps - 1 || computed_ < 2 || !std::isfinite(k_) ||
             (spec_.max_skip >= 0 && run_of_skips_ >= spec_.max_skip);
  if (!run) {
    const double input_change = mean_abs_diff(x, x_step_.data(), n_);
    accumulated_ += out_norm_ > 0 ? k_ * input_change / out_norm_ : std::numeric_limits<double>::infinity();
    run = !(accumulated_ < spec_.thresh);
  }
  std::copy_n(x, n_, x_step_.data());
  if (run) {
    accumulated_ = 0;
    run_of_skips_ = 0;
  } else {
    ++run_of_skips_;
    skipped_.push_back(step);
  }
  return run;
}

void StepCache::store(const float* x, double sigma, const float* out) {
  ++computed_;
  if (!spec_.enabled()) return;
  if (computed_ >= 2) {
    const double dx = mean_abs_diff(x, x_comp_.data(), n_);
    const double dout = mean_abs_diff(out, out_comp_.data(), n_);
    k_ = dx > 0 ? dout / dx : std::numeric_limits<double>::quiet_NaN();
  }
  if (!out_prev_.empty()) out_prev_.swap(out_comp_);
  sigma_prev_ = sigma_comp_;
  sigma_comp_ = sigma;
  std::copy_n(x, n_, x_comp_.data());
  std::copy_n(out, out_comp_.size(), out_comp_.data());
  out_norm_ = mean_abs_diff(out_comp_.data(), nullptr, n_);
}

void StepCache::reuse(const float* x, double sigma, float* out) const {
  if (computed_ < 1 || !spec_.enabled()) throw std::logic_error("step cache: reuse() before any computed step");
  const int64_t n = n_;
  for (int b = 0; b < batch_; ++b) {
    const float* oc = out_comp_.data() + b * n;
    float* o = out + b * n;
    switch (spec_.reuse) {
      case CacheSpec::Reuse::Output:
        std::copy_n(oc, n, o);
        break;
      case CacheSpec::Reuse::Delta: {
        const float* xc = x_comp_.data();
#pragma omp parallel for schedule(static) if (n > 32768)
        for (int64_t j = 0; j < n; ++j) o[j] = x[j] + (oc[j] - xc[j]);
        break;
      }
      case CacheSpec::Reuse::Extrapolate: {
        // First order in sigma through the last two computed outputs (plain reuse with one).
        const float* op = out_prev_.data() + b * n;
        const float r = computed_ >= 2 ? float((sigma - sigma_comp_) / (sigma_comp_ - sigma_prev_)) : 0.0f;
#pragma omp parallel for schedule(static) if (n > 32768)
        for (int64_t j = 0; j < n; ++j) o[j] = oc[j] + r * (oc[j] - op[j]);
        break;
      }
    }
  }
}

}  // namespace ditgen::sampler
