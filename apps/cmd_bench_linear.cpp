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

// One GEMM backend as the bench runs it: ops::linear with the backend fixed, as the model runs
// it, and the times of each shape.
struct Path {
  gemm::Backend backend;
  const char* label;  // column title
  const char* key;    // JSON prefix
  bool settle;        // OpenBLAS: pause around its runs, its workers busy-wait after a call
  std::vector<std::vector<double>> times;  // per shape, one per repeat
  double forward = 0;                      // seconds of one forward's linear layers
};

void run_linear_bench(const LinearArgs& a) {
  if (a.frames < 1 || a.batch < 1 || a.repeats < 1)
    throw UsageError("bench linear: --frames, --batch and --repeats must be at least 1");
  if (a.threads < 0) throw UsageError("bench linear: --threads must be >= 0");
  if (a.settle_ms < 0) throw UsageError("bench linear: --settle-ms must be >= 0");
  const DiTConfig cfg = a.model.empty() ? DiTConfig{} : io::inspect_weights(a.model).config;
  const int threads = a.threads > 0 ? a.threads : omp_get_max_threads();
  omp_set_num_threads(threads);
  LatentShape vs;
  vs.frames = a.frames;
  vs.height = cfg.frame_height;
  vs.width = cfg.frame_width;
  const int64_t rows = int64_t(a.batch) * cfg.tokens(vs);
  const std::vector<Shape> shapes = model_shapes(cfg);
  const size_t ns = shapes.size();
  const double load_before = load_average();

  const bool with_openblas = gemm::openblas_available();
  // Timed in this order each round: OpenBLAS last, between pauses.
  std::vector<Path> paths{{gemm::Backend::eigen, "Eigen", "eigen", false, {}, 0}};
  if (gemm::bf16_gemm_available()) paths.push_back({gemm::Backend::bf16, "bf16", "bf16", false, {}, 0});
  if (with_openblas) paths.push_back({gemm::Backend::openblas, "OpenBLAS", "openblas", true, {}, 0});
  for (Path& p : paths) p.times.resize(ns);

  std::mt19937_64 rng(1);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  int64_t max_in = 0, max_out = 0;
  for (const Shape& s : shapes) max_in = std::max(max_in, s.in), max_out = std::max(max_out, s.out);
  std::vector<float> x(size_t(rows * max_in)), y(size_t(rows * max_out));
  for (float& v : x) v = nd(rng);
  std::vector<std::vector<float>> W(ns), b(ns);
  for (size_t i = 0; i < ns; ++i) {
    W[i].resize(size_t(shapes[i].in * shapes[i].out));
    b[i].resize(size_t(shapes[i].out));
    for (float& v : W[i]) v = nd(rng) * 0.05f;
    for (float& v : b[i]) v = nd(rng);
  }

  std::cout << "bench linear: rows " << rows << " (batch " << a.batch << " x " << cfg.tokens(vs) << " tokens), D "
            << cfg.dim << ", F " << cfg.ffn_dim << ", layers " << cfg.num_layers << ", threads " << threads
            << ", repeats " << a.repeats << " (medians)\n";
  const gemm::Backend before = gemm::active_backend();
  for (int r = 0; r <= a.repeats; ++r) {  // round 0 warms up; shapes and paths interleaved
    for (Path& p : paths) {
      if (p.settle) std::this_thread::sleep_for(std::chrono::milliseconds(a.settle_ms));
      gemm::set_backend(p.backend);
      for (size_t i = 0; i < ns; ++i) {
        const auto t0 = Clock::now();
        ops::linear(x.data(), rows, shapes[i].in, W[i].data(), b[i].data(), shapes[i].out, y.data());
        if (r > 0) p.times[i].push_back(seconds_since(t0));
      }
      if (p.settle) std::this_thread::sleep_for(std::chrono::milliseconds(a.settle_ms));
    }
  }
  gemm::set_backend(before);
  const GemmRates ceiling = gemm_rates(2048, 2048, 2048, threads, a.repeats, with_openblas, a.settle_ms);

  nlohmann::json j, rows_j = nlohmann::json::array();
  double fwd_flops = 0;
  std::cout << std::fixed << "  " << std::left << std::setw(24) << "shape" << std::right << std::setw(11) << "in x out"
            << std::setw(6) << "runs";
  for (const Path& p : paths) std::cout << std::setw(12) << p.label;
  std::cout << "  GFLOP/s\n";
  for (size_t i = 0; i < ns; ++i) {
    const Shape& s = shapes[i];
    const double flops = 2.0 * double(rows) * double(s.in) * double(s.out);
    fwd_flops += flops * double(s.per_forward);
    nlohmann::json e;
    e["name"] = s.name;
    e["in"] = s.in;
    e["out"] = s.out;
    e["per_forward"] = s.per_forward;
    std::cout << "  " << std::left << std::setw(24) << s.name << std::right << std::setw(11)
              << (std::to_string(s.in) + "x" + std::to_string(s.out)) << std::setw(6) << s.per_forward
              << std::setprecision(1);
    for (Path& p : paths) {
      const double t = median(p.times[i]), gflops = flops / t / 1e9;
      p.forward += t * double(s.per_forward);
      e[std::string(p.key) + "_gflops"] = gflops;
      e[std::string(p.key) + "_over_ceiling"] = gflops / ceiling.best();
      std::cout << std::setw(12) << gflops;
    }
    rows_j.push_back(e);
    std::cout << "\n";
  }
  j["rows"] = rows;
  j["threads"] = threads;
  j["repeats"] = a.repeats;
  j["shapes"] = rows_j;
  j["gemm_gflops"] = ceiling.best();
  j["gemm_eigen_gflops"] = ceiling.eigen;
  j["gemm_openblas_gflops"] = ceiling.openblas;
  j["forward_linear_gflop"] = fwd_flops / 1e9;
  std::cout << std::setprecision(1) << "  GEMM 2048^3 ceiling: Eigen " << ceiling.eigen << ", OpenBLAS "
            << ceiling.openblas << " GFLOP/s\n"
            << "  one forward's linear layers (" << std::setprecision(2) << fwd_flops / 1e9 << " GFLOP)";
  // Against the float32 ceiling: bf16 products run at about twice its rate, so bf16 can pass 1.
  for (const Path& p : paths) {
    const double over = fwd_flops / p.forward / 1e9 / ceiling.best();
    j[std::string("forward_") + p.key + "_seconds"] = p.forward;
    j[std::string("forward_") + p.key + "_over_ceiling"] = over;
    std::cout << (&p == &paths.front() ? ": " : "; ") << p.label << " " << std::setprecision(4) << p.forward
              << " s = " << std::setprecision(3) << over << " of the ceiling";
  }
  std::cout << "\n";
  auto path_of = [&paths](gemm::Backend b) -> const Path* {
    for (const Path& p : paths)
      if (p.backend == b) return &p;
    return nullptr;
  };
  const Path* eigen = path_of(gemm::Backend::eigen);
  const Path* openblas = path_of(gemm::Backend::openblas);
  if (eigen != nullptr && openblas != nullptr) j["openblas_over_eigen_time"] = openblas->forward / eigen->forward;
  if (with_openblas) describe_openblas(j);
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
