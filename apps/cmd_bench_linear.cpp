// ditgen bench linear: the model's linear layers at its real shapes (rows = batch × tokens),
// through ops::linear with each GEMM backend (Eigen, OpenBLAS, bf16; dit/gemm.h), against the GEMM ceiling measured in
// the same run; the per-forward total weights each shape by how often one forward runs it.
#include <omp.h>

#include <algorithm>
#include <iomanip>
#include <iostream>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "apps/bench_util.h"
#include "apps/cli_common.h"
#include "apps/commands.h"
#include "dit/config.h"
#include "dit/gemm.h"
#include "dit/gemm_bf16.h"
#include "dit/ops.h"
#include "io/weights_h5.h"


namespace ditgen::app::bench {
namespace {

struct LinearArgs {
  std::string model;
  int frames = 16, batch = 2, threads = 0, repeats = 5, settle_ms = 300;
  std::string json;
};

struct Shape {
  std::string name;
  int64_t in, out, per_forward;  // y (rows×out) = x (rows×in) · Wᵀ + b, run per_forward times
};

std::vector<Shape> model_shapes(const DiTConfig& c) {
  const int64_t D = c.dim, F = c.ffn_dim, P = c.patch_values(), L = c.num_layers;
  return {{"patch_embed", P, D, 1}, {"qkv", D, 3 * D, L}, {"attn_out_and_cross_q_o", D, D, 3 * L},
          {"ffn_up", D, F, L},      {"ffn_down", F, D, L},  {"head", D, P, 1}};
}

// ops::linear with the GEMM backend fixed, as the model runs it.
template <gemm::Backend B>
void linear_with(const float* x, int64_t rows, int64_t in, const float* W, const float* b, int64_t out, float* y) {
  gemm::set_backend(B);
  ops::linear(x, rows, in, W, b, out, y);
}

void run_linear_bench(const LinearArgs& a) {
  if (a.frames < 1 || a.batch < 1 || a.repeats < 1)
    throw UsageError("bench linear: --frames, --batch and --repeats must be at least 1");
  if (a.threads < 0) throw UsageError("bench linear: --threads must be >= 0");
  if (a.settle_ms < 0) throw UsageError("bench linear: --settle-ms must be >= 0");
  const DiTConfig cfg = a.model.empty() ? DiTConfig{} : io::inspect_weights(a.model).config;
  const int threads = a.threads > 0 ? a.threads : omp_get_max_threads();
  omp_set_num_threads(threads);
  VideoShape vs;
  vs.frames = a.frames;
  vs.height = cfg.frame_height;
  vs.width = cfg.frame_width;
  const int64_t rows = int64_t(a.batch) * vs.tokens(cfg);
  const std::vector<Shape> shapes = model_shapes(cfg);
  const double load_before = load_average();

  const bool with_openblas = gemm::openblas_available(), with_bf16 = gemm::bf16_gemm_available();
  std::mt19937_64 rng(1);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  int64_t max_in = 0, max_out = 0;
  for (const Shape& s : shapes) max_in = std::max(max_in, s.in), max_out = std::max(max_out, s.out);
  std::vector<float> x(size_t(rows * max_in)), y(size_t(rows * max_out));
  for (float& v : x) v = nd(rng);
  std::vector<std::vector<float>> W(shapes.size()), b(shapes.size());
  for (size_t i = 0; i < shapes.size(); ++i) {
    W[i].resize(size_t(shapes[i].in * shapes[i].out));
    b[i].resize(size_t(shapes[i].out));
    for (float& v : W[i]) v = nd(rng) * 0.05f;
    for (float& v : b[i]) v = nd(rng);
  }

  std::cout << "bench linear: rows " << rows << " (batch " << a.batch << " x " << vs.tokens(cfg) << " tokens), D "
            << cfg.dim << ", F " << cfg.ffn_dim << ", layers " << cfg.num_layers << ", threads " << threads
            << ", repeats " << a.repeats << " (medians)\n";
  const size_t ns = shapes.size();
  std::vector<std::vector<double>> t_eigen(ns), t_blas(ns), t_bf16(ns);
  auto time_one = [&](auto&& fn, size_t i, std::vector<double>& out) {
    const auto t0 = Clock::now();
    fn(x.data(), rows, shapes[i].in, W[i].data(), b[i].data(), shapes[i].out, y.data());
    out.push_back(seconds_since(t0));
  };
  for (int r = 0; r <= a.repeats; ++r) {  // round 0 warms up; shapes and paths interleaved
    std::vector<std::vector<double>> te(ns), tb(ns), th(ns);
    for (size_t i = 0; i < ns; ++i) time_one(linear_with<gemm::Backend::eigen>, i, te[i]);
    if (with_bf16)
      for (size_t i = 0; i < ns; ++i) time_one(linear_with<gemm::Backend::bf16>, i, th[i]);
    if (with_openblas) {
      std::this_thread::sleep_for(std::chrono::milliseconds(a.settle_ms));
      for (size_t i = 0; i < ns; ++i) time_one(linear_with<gemm::Backend::openblas>, i, tb[i]);
      std::this_thread::sleep_for(std::chrono::milliseconds(a.settle_ms));
    }
    if (r == 0) continue;
    for (size_t i = 0; i < ns; ++i) {
      t_eigen[i].push_back(te[i][0]);
      if (with_openblas) t_blas[i].push_back(tb[i][0]);
      if (with_bf16) t_bf16[i].push_back(th[i][0]);
    }
  }
  const GemmRates ceiling = gemm_rates(2048, 2048, 2048, threads, a.repeats, with_openblas, a.settle_ms);

  nlohmann::json j, rows_j = nlohmann::json::array();
  double fwd_eigen = 0, fwd_blas = 0, fwd_bf16 = 0, fwd_flops = 0;
  std::cout << std::fixed << "  " << std::left << std::setw(24) << "shape" << std::right << std::setw(11) << "in x out"
            << std::setw(6) << "runs" << std::setw(12) << "Eigen" << std::setw(12) << "OpenBLAS"
            << std::setw(12) << "bf16" << "  GFLOP/s\n";
  for (size_t i = 0; i < ns; ++i) {
    const Shape& s = shapes[i];
    const double flops = 2.0 * double(rows) * double(s.in) * double(s.out);
    const double te = median(t_eigen[i]), tb = with_openblas ? median(t_blas[i]) : 0,
                 th = with_bf16 ? median(t_bf16[i]) : 0;
    fwd_eigen += te * double(s.per_forward);
    fwd_blas += tb * double(s.per_forward);
    fwd_bf16 += th * double(s.per_forward);
    fwd_flops += flops * double(s.per_forward);
    nlohmann::json e;
    e["name"] = s.name;
    e["in"] = s.in;
    e["out"] = s.out;
    e["per_forward"] = s.per_forward;
    e["eigen_gflops"] = flops / te / 1e9;
    e["eigen_over_ceiling"] = flops / te / 1e9 / ceiling.best();
    if (with_openblas) {
      e["openblas_gflops"] = flops / tb / 1e9;
      e["openblas_over_ceiling"] = flops / tb / 1e9 / ceiling.best();
    }
    if (with_bf16) e["bf16_gflops"] = flops / th / 1e9;
    rows_j.push_back(e);
    std::cout << "  " << std::left << std::setw(24) << s.name << std::right << std::setw(11)
              << (std::to_string(s.in) + "x" + std::to_string(s.out)) << std::setw(6) << s.per_forward
              << std::setprecision(1) << std::setw(12) << flops / te / 1e9 << std::setw(12)
              << (with_openblas ? flops / tb / 1e9 : 0.0) << std::setw(12) << (with_bf16 ? flops / th / 1e9 : 0.0)
              << "\n";
  }
  j["rows"] = rows;
  j["threads"] = threads;
  j["repeats"] = a.repeats;
  j["shapes"] = rows_j;
  j["gemm_gflops"] = ceiling.best();
  j["gemm_eigen_gflops"] = ceiling.eigen;
  j["gemm_openblas_gflops"] = ceiling.openblas;
  j["forward_linear_gflop"] = fwd_flops / 1e9;
  j["forward_eigen_seconds"] = fwd_eigen;
  j["forward_eigen_over_ceiling"] = fwd_flops / fwd_eigen / 1e9 / ceiling.best();
  std::cout << std::setprecision(1) << "  GEMM 2048^3 ceiling: Eigen " << ceiling.eigen << ", OpenBLAS "
            << ceiling.openblas << " GFLOP/s\n"
            << "  one forward's linear layers (" << std::setprecision(2) << fwd_flops / 1e9 << " GFLOP): Eigen "
            << std::setprecision(4) << fwd_eigen << " s = " << std::setprecision(3)
            << double(j["forward_eigen_over_ceiling"]) << " of the ceiling";
  if (with_openblas) {
    j["forward_openblas_seconds"] = fwd_blas;
    j["forward_openblas_over_ceiling"] = fwd_flops / fwd_blas / 1e9 / ceiling.best();
    j["openblas_over_eigen_time"] = fwd_blas / fwd_eigen;
    describe_openblas(j);
    std::cout << "; OpenBLAS " << std::setprecision(4) << fwd_blas << " s = " << std::setprecision(3)
              << double(j["forward_openblas_over_ceiling"]) << " of the ceiling";
  }
  if (with_bf16) {
    // Against the float32 ceiling: bf16 products run at about twice its rate, so this can pass 1.
    j["forward_bf16_seconds"] = fwd_bf16;
    j["forward_bf16_over_ceiling"] = fwd_flops / fwd_bf16 / 1e9 / ceiling.best();
    std::cout << "; bf16 " << std::setprecision(4) << fwd_bf16 << " s = " << std::setprecision(3)
              << double(j["forward_bf16_over_ceiling"]) << " of the ceiling";
  }
  std::cout << "\n";
  j["load_average_before"] = load_before;
  j["load_average_after"] = load_average();
  std::cout << std::setprecision(2) << "  load average " << load_before << " before, " << load_average() << " after\n";
  if (!a.json.empty()) write_json(a.json, j, /*overwrite=*/true);
}

}  // namespace

void add_linear_bench(CLI::App& bench) {
  auto a = std::make_shared<LinearArgs>();
  CLI::App* s = bench.add_subcommand(
      "linear",
      "The model's linear layers at its shapes (rows = batch x tokens) through ops::linear (Eigen), OpenBLAS "
      "sgemm and the bf16 kernel (where the CPU has AVX-512 BF16), with the GEMM ceiling (2048^3) of the same run");
  s->add_option("--model", a->model, "Weight file whose config gives the shapes (default: the built-in digits config)");
  s->add_option("--frames", a->frames, "Frames (tokens = frames x patches a frame)")->capture_default_str();
  s->add_option("--batch", a->batch, "Batch (2: conditional and unconditional passes of CFG)")->capture_default_str();
  s->add_option("--threads", a->threads, "Threads (0: OpenMP default)")->capture_default_str();
  s->add_option("--repeats", a->repeats, "Timed repeats (medians are reported)")->capture_default_str();
  s->add_option("--json", a->json, "Write the results as JSON to this file");
  s->add_option("--settle-ms", a->settle_ms, "Pause around the OpenBLAS runs (busy-waiting workers)")
      ->capture_default_str();
  s->callback([a] { run_linear_bench(*a); });
}

}  // namespace ditgen::app::bench
