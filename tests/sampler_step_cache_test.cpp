// Step caching (sampler/step_cache.h): spec parsing, the deterministic mean, the skip decision
// against a plain re-statement of EasyCache's rule, what a skipped step returns, and the cache
// inside generate() (pinned anchor steps, reporting, off = no change).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <omp.h>

#include <cmath>
#include <limits>
#include <random>
#include <stdexcept>
#include <vector>

#include "attention/spec.h"
#include "model_util.h"
#include "pipeline/generate.h"
#include "sampler/sampler.h"
#include "sampler/step_cache.h"

namespace ditgen {
namespace {

using sampler::CacheSpec;
using sampler::StepCache;

std::vector<float> randn(int64_t n, uint64_t seed, float scale = 1.0f) {
  std::mt19937_64 g(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = d(g);
  return v;
}

TEST(CacheSpec, ParsesEveryKeyAndRoundTrips) {
  EXPECT_FALSE(CacheSpec::parse("off").enabled());
  const CacheSpec d = CacheSpec::parse("easy");
  EXPECT_TRUE(d.enabled());
  EXPECT_EQ(d.thresh, 0.05);
  EXPECT_EQ(d.warmup_steps(50), 10);
  EXPECT_EQ(d.max_skip, -1);
  EXPECT_EQ(d.reuse, CacheSpec::Reuse::Delta);
  const CacheSpec s = CacheSpec::parse("easy:thresh=0.125,warmup=3,max_skip=0,reuse=output");
  EXPECT_EQ(s.thresh, 0.125);
  EXPECT_EQ(s.warmup_steps(50), 3);
  EXPECT_EQ(s.max_skip, 0);
  EXPECT_EQ(s.reuse, CacheSpec::Reuse::Output);
  EXPECT_EQ(CacheSpec::parse("easy:warmup=1.0").warmup_steps(7), 7);
  EXPECT_EQ(CacheSpec::parse("easy:warmup=0").warmup_steps(7), 0);
  for (const char* text : {"off", "easy", "easy:thresh=0.125,warmup=3,max_skip=0,reuse=output", "easy:warmup=1.0",
                           "easy:warmup=0.35,thresh=2"}) {
    const std::string canon = CacheSpec::parse(text).str();
    EXPECT_EQ(CacheSpec::parse(canon).str(), canon) << text;
  }
}

TEST(CacheSpec, RefusesBadValuesNamingThem) {
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"tea", "'tea'"},           {"easy:thresh=0", "thresh = 0"},     {"easy:thresh=-1", "thresh = -1"},
      {"easy:thresh=nan", "nan"}, {"easy:thresh=x", "'x'"},             {"easy:warmup=1.5", "warmup = '1.5'"},
      {"easy:warmup=-2", "-2"},   {"easy:max_skip=1.5", "1.5"},         {"easy:reuse=both", "'both'"},
      {"easy:speed=2", "'speed'"}, {"easy:thresh=0.1,thresh=0.2", "twice"}, {"easy:thresh", "not key=value"},
      {"", "''"}};
  for (const auto& [text, needle] : bad) {
    try {
      CacheSpec::parse(text);
      ADD_FAILURE() << "accepted '" << text << "'";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  }
}

TEST(StepCacheMean, MatchesAPlainSumAndIgnoresTheThreadCount) {
  for (int64_t n : {0, 1, 7, 16383, 16384, 16385, 50001}) {
    const auto a = randn(n, 1 + uint64_t(n)), b = randn(n, 2 + uint64_t(n));
    double s = 0, t = 0;
    for (int64_t j = 0; j < n; ++j) {
      s += std::fabs(double(a[j]) - double(b[j]));
      t += std::fabs(double(a[j]));
    }
    const double want = n ? s / n : 0, want_a = n ? t / n : 0;
    omp_set_num_threads(1);
    const double one = sampler::mean_abs_diff(a.data(), b.data(), n);
    omp_set_num_threads(2);
    const double two = sampler::mean_abs_diff(a.data(), b.data(), n);
    EXPECT_EQ(one, two) << n;  // bit-identical: fixed chunks summed in order
    EXPECT_NEAR(two, want, 1e-12 * (1 + want)) << n;
    EXPECT_NEAR(sampler::mean_abs_diff(a.data(), nullptr, n), want_a, 1e-12 * (1 + want_a)) << n;
  }
}

// EasyCache's rule restated step by step, for a trajectory of inputs and the conditional output
// the model would give at each: which steps a run skips.
std::vector<int> reference_skips(const std::vector<std::vector<float>>& xs, const std::vector<std::vector<float>>& os,
                                 double thresh, int warmup, int max_skip, const std::vector<bool>& pinned) {
  const int steps = int(xs.size());
  const int64_t n = int64_t(xs[0].size());
  auto mad = [&](const std::vector<float>& a, const std::vector<float>* b) {
    double s = 0;
    for (int64_t j = 0; j < n; ++j) s += std::fabs(double(a[size_t(j)]) - (b ? double((*b)[size_t(j)]) : 0.0));
    return s / double(n);
  };
  std::vector<int> skips;
  int last = -1, before = -1, run = 0;
  double k = std::numeric_limits<double>::quiet_NaN(), acc = 0;
  for (int t = 0; t < steps; ++t) {
    bool compute = pinned[size_t(t)] || t < warmup || t == steps - 1 || last < 0 || std::isnan(k) ||
                   (max_skip >= 0 && run >= max_skip);
    if (!compute) {
      acc += k * mad(xs[size_t(t)], &xs[size_t(t - 1)]) / mad(os[size_t(last)], nullptr);
      compute = acc >= thresh;
    }
    if (compute) {
      acc = 0;
      run = 0;
      before = last;
      last = t;
      if (before >= 0)
        k = mad(os[size_t(t)], &os[size_t(before)]) / mad(xs[size_t(t)], &xs[size_t(before)]);
    } else {
      ++run;
      skips.push_back(t);
    }
  }
  return skips;
}

// A smooth random trajectory: x drifts, the output follows x partly and a slow trend.
struct Trajectory {
  std::vector<std::vector<float>> xs, os;
};
Trajectory make_trajectory(int steps, int64_t n, uint64_t seed) {
  Trajectory tr;
  std::vector<float> x = randn(n, seed), o = randn(n, seed + 1), dir = randn(n, seed + 2, 0.05f);
  for (int t = 0; t < steps; ++t) {
    const auto kick = randn(n, seed + 10 + uint64_t(t), 0.02f * float(1 + t % 3));
    for (int64_t j = 0; j < n; ++j) {
      x[size_t(j)] += dir[size_t(j)] + kick[size_t(j)];
      o[size_t(j)] += 0.3f * (dir[size_t(j)] + kick[size_t(j)]) + 0.01f * float(t % 4);
    }
    tr.xs.push_back(x);
    tr.os.push_back(o);
  }
  return tr;
}

TEST(StepCache, DecisionsMatchTheRuleRestated) {
  const int64_t n = 3001;
  const int steps = 30;
  for (uint64_t seed : {1u, 2u, 3u}) {
    const Trajectory tr = make_trajectory(steps, n, seed * 100);
    for (double thresh : {0.005, 0.02, 0.05, 0.2}) {
      for (int max_skip : {-1, 0, 1, 3}) {
        std::vector<bool> pinned(size_t(steps), false);
        if (seed == 2) pinned[12] = pinned[13] = pinned[20] = true;
        CacheSpec spec = CacheSpec::parse("easy:warmup=4");
        spec.thresh = thresh;
        spec.max_skip = max_skip;
        StepCache cache(spec, n, 1);
        for (int t = 0; t < steps; ++t)
          if (cache.compute(tr.xs[size_t(t)].data(), t, steps, pinned[size_t(t)]))
            cache.store(tr.xs[size_t(t)].data(), 1.0 - t / 30.0, tr.os[size_t(t)].data());
        const auto want = reference_skips(tr.xs, tr.os, thresh, 4, max_skip, pinned);
        EXPECT_EQ(cache.skipped_steps(), want) << "seed " << seed << " thresh " << thresh << " max_skip " << max_skip;
        EXPECT_EQ(cache.computed_steps() + int(want.size()), steps);
        if (max_skip == 0) {
          EXPECT_TRUE(want.empty());
        }
        for (int s : want) {
          EXPECT_GE(s, 4);
          EXPECT_LT(s, steps - 1);
          EXPECT_FALSE(pinned[size_t(s)]);
        }
      }
    }
  }
  // The case must skip something, or the comparison above proves little.
  const Trajectory tr = make_trajectory(steps, n, 100);
  EXPECT_FALSE(reference_skips(tr.xs, tr.os, 0.2, 4, -1, std::vector<bool>(size_t(steps), false)).empty());
}

TEST(StepCache, ReuseReturnsDeltaOrOutputForEveryBatchElement) {
  const int64_t n = 40000;  // above the parallel threshold
  const auto x0 = randn(n, 5), x1 = randn(n, 6), x2 = randn(n, 7);
  const auto out = randn(2 * n, 8);
  const double s0 = 0.9, s1 = 0.8, s2 = 0.7;
  for (const char* text : {"easy:warmup=0,thresh=1000", "easy:warmup=0,thresh=1000,reuse=output",
                           "easy:warmup=0,thresh=1000,reuse=extrapolate"}) {
    StepCache cache(CacheSpec::parse(text), n, 2);
    ASSERT_TRUE(cache.compute(x0.data(), 0, 10, false));  // no rate yet
    cache.store(x0.data(), s0, out.data());
    auto out1 = out;
    for (size_t i = 0; i < out1.size(); ++i) out1[i] += 0.25f + 0.001f * float(i % 7);
    ASSERT_TRUE(cache.compute(x1.data(), 1, 10, false));
    cache.store(x1.data(), s1, out1.data());
    ASSERT_FALSE(cache.compute(x2.data(), 2, 10, false));
    std::vector<float> got(size_t(2 * n));
    cache.reuse(x2.data(), s2, got.data());
    const CacheSpec::Reuse mode = CacheSpec::parse(text).reuse;
    const float r = float((s2 - s1) / (s1 - s0));
    for (int b = 0; b < 2; ++b)
      for (int64_t j = 0; j < n; j += 997) {
        const size_t i = size_t(b * n + j);
        const float want = mode == CacheSpec::Reuse::Delta    ? x2[size_t(j)] + (out1[i] - x1[size_t(j)])
                           : mode == CacheSpec::Reuse::Output ? out1[i]
                                                              : out1[i] + r * (out1[i] - out[i]);
        ASSERT_EQ(got[i], want) << text << " b " << b << " j " << j;
      }
  }
}

TEST(StepCache, OffAlwaysComputesAndRefusesReuse) {
  const auto x = randn(10, 1);
  StepCache cache(CacheSpec{}, 10, 1);
  for (int t = 0; t < 5; ++t) {
    ASSERT_TRUE(cache.compute(x.data(), t, 5, false));
    cache.store(x.data(), 0.5, x.data());
  }
  EXPECT_TRUE(cache.skipped_steps().empty());
  EXPECT_EQ(cache.computed_steps(), 5);
  StepCache fresh(CacheSpec::parse("easy"), 10, 1);
  std::vector<float> out(10);
  EXPECT_THROW(fresh.reuse(x.data(), 0.5, out.data()), std::logic_error);
  EXPECT_THROW(StepCache(CacheSpec::parse("easy"), 10, 0), std::invalid_argument);
}

// A model whose velocity depends on neither x nor sigma has rate 0: every step after the
// warm-up but the last is skipped, and reusing its output changes nothing, bit for bit.
// Reusing Delta instead (EasyCache's form) drifts with x: the check can tell them apart.
TEST(StepCache, ConstantVelocityIsReusedExactly) {
  const int64_t n = 5000, steps = 12;
  const auto noise = randn(n, 11), field = randn(n, 12);
  const std::vector<double> sigmas = sampler::flow_sigmas(int(steps), 3.0);
  auto flat = [&](const float*, double, int, float* v) { std::copy(field.begin(), field.end(), v); };
  for (auto solver : {sampler::Solver::Euler, sampler::Solver::UniPC}) {
    std::vector<float> want = noise;
    sampler::sample(solver, want.data(), n, sigmas, flat);
    for (const char* text : {"easy:warmup=2,reuse=output", "easy:warmup=2,reuse=extrapolate", "easy:warmup=2,reuse=delta"}) {
      StepCache cache(CacheSpec::parse(text), n, 1);
      auto cached = [&](const float* x, double sigma, int step, float* v) {
        if (cache.compute(x, step, int(steps), false)) {
          flat(x, sigma, step, v);
          cache.store(x, sigma, v);
        } else {
          cache.reuse(x, sigma, v);
        }
      };
      std::vector<float> got = noise;
      sampler::sample(solver, got.data(), n, sigmas, cached);
      EXPECT_EQ(cache.skipped_steps(), (std::vector<int>{2, 3, 4, 5, 6, 7, 8, 9, 10})) << text;
      if (CacheSpec::parse(text).reuse != CacheSpec::Reuse::Delta) {
        EXPECT_EQ(got, want) << text;
      } else {
        EXPECT_NE(got, want) << text;
      }
    }
  }
}

pipeline::GenerateResult run_cached(pipeline::Model& model, const std::string& attn, const std::string& cache,
                                    int steps) {
  auto backend = attn::make_backend(attn);
  pipeline::GenerateOptions o;
  o.shape = LatentShape{4, 16, 16};
  o.condition.labels = {3, 7};
  o.steps = steps;
  o.cfg = 4;
  o.seed = 5;
  o.cache = CacheSpec::parse(cache);
  return pipeline::generate(model, *backend, o);
}

TEST(StepCacheInGenerate, SkipsStepsNeverAnchorsAndReports) {
  pipeline::Model model = test::random_model(test::small_config(), 21);
  const auto plain = run_cached(model, "dense", "off", 12);
  EXPECT_TRUE(plain.skipped_steps.empty());
  EXPECT_EQ(plain.model_steps, 12);
  EXPECT_EQ(plain.cache_spec, "off");

  const auto cached = run_cached(model, "dense", "easy:thresh=100,warmup=2,reuse=output", 12);
  // Steps 0 and 1 warm up and measure the rate; the last step always runs.
  EXPECT_EQ(cached.skipped_steps, (std::vector<int>{2, 3, 4, 5, 6, 7, 8, 9, 10}));
  EXPECT_EQ(cached.model_steps, 3);
  EXPECT_NE(cached.video, plain.video);

  // refresh=3 with dense_steps=3: anchors at steps 2, 5, 8, 11 always run; steps 0 and 1 run
  // because no rate is known before two computed steps. fallback=none: on this small clip the
  // plan computes more blocks than dense, and would otherwise run dense without anchors.
  const std::string sparse = "radial3d:decay=0.5,dense_steps=3,refresh=3,fallback=none";
  const auto r = run_cached(model, sparse, "easy:thresh=100,warmup=0", 12);
  EXPECT_EQ(r.skipped_steps, (std::vector<int>{3, 4, 6, 7, 9, 10}));
  EXPECT_NE(r.cache_spec.find("easy:thresh=100"), std::string::npos);
  auto backend = attn::make_backend(sparse);
  for (int s : {2, 5, 8, 11}) EXPECT_TRUE(backend->pinned_step(s, 12)) << s;
  EXPECT_FALSE(backend->pinned_step(3, 12));
}

// The plan fallback: where a sparse plan costs as much as dense, the run attends densely,
// pins no anchor, and says so in its report.
TEST(StepCacheInGenerate, PlanThatCostsAsMuchAsDenseRunsDense) {
  pipeline::Model model = test::random_model(test::small_config(), 21);
  const std::string spec = "radial3d:decay=0.5,dense_steps=3,refresh=3";
  auto backend = attn::make_backend(spec);
  pipeline::GenerateOptions o;
  o.shape = LatentShape{4, 16, 16};
  o.condition.labels = {3, 7};
  o.steps = 12;
  o.seed = 5;
  o.cache = CacheSpec::parse("easy:thresh=100,warmup=0");
  const auto r = pipeline::generate(model, *backend, o);
  const auto report = nlohmann::json::parse(r.attn_report);
  EXPECT_TRUE(report["plan_ran_dense"].get<bool>());
  EXPECT_GE(report["plan_cost"].get<double>(), 1.0);
  EXPECT_EQ(report["mean_pair_density"].get<double>(), 1.0);
  EXPECT_FALSE(backend->pinned_step(5, 12));
  EXPECT_EQ(r.skipped_steps, (std::vector<int>{2, 3, 4, 5, 6, 7, 8, 9, 10}));
  const auto dense = run_cached(model, "dense", "easy:thresh=100,warmup=0", 12);
  EXPECT_EQ(r.video, dense.video);  // the same kernel over every block: the same bits
}

}  // namespace
}  // namespace ditgen
