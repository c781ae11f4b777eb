// ditgen bench <target>: benchmarks timed in one process, so that the ratios between what they
// time hold on a shared, noisy machine. Targets: `attention` (here: the flash-attention kernel,
// dense and block-sparse, against the machine's single-precision GEMM ceiling) and `linear`
// (cmd_bench_linear.cpp). A new target declares add_<target>_bench in bench_util.h and is
// added to the Registrar below.
#include <omp.h>

#include <Eigen/Core>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <iomanip>
#include <iostream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "apps/bench_util.h"
#include "apps/cli_common.h"
#include "apps/commands.h"
#include "attention/kernel/block_map.h"
#include "attention/kernel/kernel.h"
#include "attention/mask/mask.h"
#include "core/numbers.h"
#include "dit/gemm.h"

namespace ditgen::app::bench {

std::vector<double> parse_densities(const std::string& text) {
  std::vector<double> densities;
  for (const std::string& t : split_list(text)) {
    const double x = parse_finite(t).value_or(-1);
    if (!(x > 0 && x <= 1)) throw UsageError("bench attention: --density '" + t + "' is not a number in (0, 1]");
    densities.push_back(x);
  }
  if (densities.empty()) throw UsageError("bench attention: --density is empty");
  return densities;
}

namespace {

struct AttentionArgs {
  int64_t tokens = 4096;
  int head_dim = 64, heads = 4, block = 64, threads = 0, repeats = 5;
  std::string density = "0.25";
  std::string isa = "auto";
  std::string json;
  uint64_t seed = 1;
  int settle_ms = 300;
  bool no_gemm = false, no_thin = false;
};

void run_attention_bench(const AttentionArgs& a) {
  if (a.tokens < 1 || a.head_dim < 1 || a.heads < 1 || a.repeats < 1)
    throw UsageError("bench attention: --tokens, --head-dim, --heads and --repeats must be at least 1");
  if (a.block < 1 || a.block > 1024) throw UsageError("bench attention: --block must be 1 to 1024");
  if (a.threads < 0) throw UsageError("bench attention: --threads must be >= 0");
  if (a.settle_ms < 0) throw UsageError("bench attention: --settle-ms must be >= 0");
  const std::vector<double> densities = parse_densities(a.density);
  std::vector<attn::Isa> isas;
  for (const std::string& t : split_list(a.isa)) {
    try {
      isas.push_back(attn::resolve_isa(attn::parse_isa(t)));
    } catch (const std::invalid_argument& e) {
      throw UsageError(std::string("bench attention: --isa: ") + e.what());
    }
  }
  if (isas.empty()) throw UsageError("bench attention: --isa is empty");
  const int threads = a.threads > 0 ? a.threads : omp_get_max_threads();
  const int64_t n = a.tokens;
  const int d = a.head_dim, h = a.heads;
  const double load_before = load_average();

  std::vector<float> q(size_t(h) * n * d), k(q.size()), v(q.size()), out(q.size());
  {
    std::mt19937_64 rng(a.seed);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    for (auto* x : {&q, &k, &v})
      for (auto& y : *x) y = nd(rng);
  }
  const attn::BlockMap dense = attn::BlockMap::dense(n, a.block);
  std::vector<attn::BlockMap> sparse;
  for (size_t i = 0; i < densities.size(); ++i) sparse.push_back(attn::random_block_map(n, a.block, densities[i], a.seed + 1 + i));
  const double flops = 4.0 * double(n) * double(n) * d * h;

  std::cout << "bench attention: tokens " << n << ", head_dim " << d << ", heads " << h << ", block " << a.block
            << ", threads " << threads << ", repeats " << a.repeats << " (medians)\n";

  nlohmann::json per_isa = nlohmann::json::object();
  for (attn::Isa isa : isas) {
    const attn::KernelOptions opt{isa, threads};
    struct Times {
      std::vector<double> wall, cpu;
    };
    auto run = [&](const attn::BlockMap& m, Times& t) {
      const double c0 = process_cpu_seconds();
      const auto t0 = Clock::now();
      attn::AttentionKernel(opt).run(self_attention(q.data(), k.data(), v.data(), out.data(), h, n, d, &m));
      t.wall.push_back(seconds_since(t0));
      t.cpu.push_back(process_cpu_seconds() - c0);
    };
    Times warm, td;
    run(dense, warm);
    std::vector<Times> ts(sparse.size());
    std::vector<std::vector<double>> ratio(sparse.size()), ratio_cpu(sparse.size());
    for (size_t i = 0; i < sparse.size(); ++i) run(sparse[i], warm);
    for (int r = 0; r < a.repeats; ++r) {  // interleaved: dense and sparse see the same machine state
      run(dense, td);
      for (size_t i = 0; i < sparse.size(); ++i) {
        run(sparse[i], ts[i]);
        ratio[i].push_back(ts[i].wall.back() / td.wall.back());
        ratio_cpu[i].push_back(ts[i].cpu.back() / td.cpu.back());
      }
    }
    nlohmann::json j;
    j["dense_seconds"] = median(td.wall);
    j["dense_gflops"] = flops / median(td.wall) / 1e9;
    j["dense_cpu_seconds"] = median(td.cpu);
    // Work per second of CPU actually received: on a shared machine, closer to what the kernel
    // does on idle cores than the wall-clock rate (it counts OpenMP busy-waiting, though).
    j["dense_gflops_per_cpu_second"] = flops / median(td.cpu) / 1e9;
    j["dense_seconds_all"] = td.wall;
    std::cout << std::fixed << "  " << std::left << std::setw(11) << attn::isa_name(isa) << " dense  "
              << std::setprecision(4) << median(td.wall) << " s  " << std::setprecision(1) << double(j["dense_gflops"])
              << " GFLOP/s (" << double(j["dense_gflops_per_cpu_second"]) << " per CPU-second)\n";
    nlohmann::json sp = nlohmann::json::array();
    for (size_t i = 0; i < sparse.size(); ++i) {
      const double pd = sparse[i].pair_density();
      nlohmann::json e;
      e["density"] = densities[i];
      e["pair_density"] = pd;
      e["sparse_seconds"] = median(ts[i].wall);
      e["sparse_over_dense"] = median(ratio[i]);
      e["sparse_over_dense_per_density"] = median(ratio[i]) / pd;
      e["sparse_over_dense_cpu"] = median(ratio_cpu[i]);
      e["sparse_effective_gflops"] = flops * pd / median(ts[i].wall) / 1e9;
      e["sparse_seconds_all"] = ts[i].wall;
      sp.push_back(e);
      std::cout << "  " << std::setw(11) << "" << " sparse " << std::setprecision(4) << median(ts[i].wall)
                << " s  density " << std::setprecision(3) << densities[i] << " (pairs " << std::setprecision(4) << pd
                << "): sparse/dense " << median(ratio[i]) << " = " << std::setprecision(3) << median(ratio[i]) / pd
                << " x density (cpu time: " << median(ratio_cpu[i]) / pd << ")\n";
    }
    j["sparse"] = sp;
    per_isa[attn::isa_name(isa)] = j;
  }

  const nlohmann::json& first = per_isa[attn::isa_name(isas.front())];
  nlohmann::json j;
  j["tokens"] = n;
  j["head_dim"] = d;
  j["heads"] = h;
  j["density"] = densities.front();
  j["block"] = a.block;
  j["threads"] = threads;
  j["repeats"] = a.repeats;
  j["isa"] = attn::isa_name(isas.front());
  j["dense_seconds"] = first["dense_seconds"];
  j["dense_gflops"] = first["dense_gflops"];
  j["sparse_seconds"] = first["sparse"][0]["sparse_seconds"];
  j["pair_density"] = first["sparse"][0]["pair_density"];
  j["sparse_over_dense"] = first["sparse"][0]["sparse_over_dense"];
  j["sparse_over_dense_per_density"] = first["sparse"][0]["sparse_over_dense_per_density"];
  j["per_isa"] = per_isa;

  if (!a.no_gemm) {
    const bool with_openblas = gemm::openblas_available();
    describe_openblas(j);
    const GemmRates sq = gemm_rates(2048, 2048, 2048, threads, a.repeats, with_openblas, a.settle_ms);
    j["gemm_gflops"] = sq.best();
    j["gemm_eigen_gflops"] = sq.eigen;
    j["gemm_openblas_gflops"] = sq.openblas;
    j["dense_over_gemm"] = double(first["dense_gflops"]) / sq.best();
    j["gemm_gflops_per_cpu_second"] = sq.best_cpu();
    j["gemm_eigen_gflops_per_cpu_second"] = sq.eigen_cpu;
    j["gemm_openblas_gflops_per_cpu_second"] = sq.openblas_cpu;
    j["dense_over_gemm_per_cpu_second"] = double(first["dense_gflops_per_cpu_second"]) / sq.best_cpu();
    std::cout << std::setprecision(1) << "  GEMM 2048^3: Eigen " << sq.eigen << ", OpenBLAS " << sq.openblas
              << " GFLOP/s; dense " << attn::isa_name(isas.front()) << " = " << std::setprecision(3)
              << double(j["dense_over_gemm"]) << " of the ceiling\n"
              << std::setprecision(1) << "  per CPU-second: Eigen " << sq.eigen_cpu << ", OpenBLAS " << sq.openblas_cpu
              << "; dense " << attn::isa_name(isas.front()) << " = " << std::setprecision(3)
              << double(j["dense_over_gemm_per_cpu_second"]) << " of the ceiling\n";
    if (!a.no_thin) {
      // The products attention does, on a panel of m = min(N, 1024) query rows (rates do not
      // depend much on the panel height, and N×N would not fit at N = 32768).
      const int64_t m = std::min<int64_t>(n, 1024);
      const GemmRates qk = gemm_rates(m, n, d, threads, std::max(1, a.repeats / 2), with_openblas, a.settle_ms);
      const GemmRates pv = gemm_rates(m, d, n, threads, std::max(1, a.repeats / 2), with_openblas, a.settle_ms);
      j["thin_rows"] = m;
      j["gemm_qk_gflops"] = qk.best();  // (m×d)·(d×N)
      j["gemm_pv_gflops"] = pv.best();  // (m×N)·(N×d)
      j["gemm_qk_eigen_gflops"] = qk.eigen;
      j["gemm_qk_openblas_gflops"] = qk.openblas;
      j["gemm_pv_eigen_gflops"] = pv.eigen;
      j["gemm_pv_openblas_gflops"] = pv.openblas;
      std::cout << std::setprecision(1) << "  thin GEMM (" << m << " query rows): Q.K^T " << qk.best()
                << " GFLOP/s (Eigen " << qk.eigen << ", OpenBLAS " << qk.openblas << "); P.V " << pv.best()
                << " (Eigen " << pv.eigen << ", OpenBLAS " << pv.openblas << ")\n";
    }
  }
  j["settle_ms"] = a.settle_ms;
  j["load_average_before"] = load_before;
  j["load_average_after"] = load_average();
  std::cout << std::setprecision(2) << "  load average " << load_before << " before, " << load_average() << " after\n";
  if (!a.json.empty()) write_json(a.json, j, /*overwrite=*/true);
}

}  // namespace

void add_attention_bench(CLI::App& bench) {
  auto a = std::make_shared<AttentionArgs>();
  CLI::App* s = bench.add_subcommand(
      "attention",
      "Flash-attention kernel: dense and block-sparse (random map of --density, diagonal kept) timed in one run "
      "with the single-precision GEMM ceiling (max of Eigen and OpenBLAS on 2048^3, OpenBLAS loaded as dit/gemm.h "
      "does: its AVX-512 kernels on AVX-512 CPUs)");
  s->add_option("--tokens", a->tokens, "Tokens N")->required();
  s->add_option("--head-dim", a->head_dim, "Head dimension")->required();
  s->add_option("--heads", a->heads, "Heads")->required();
  s->add_option("--density", a->density,
                "Block density of the sparse map, (0, 1]; a comma-separated list times several maps against the "
                "same dense runs (the top-level JSON keys describe the first)")
      ->required();
  s->add_option("--block", a->block, "Block size (query and key)")->capture_default_str();
  s->add_option("--threads", a->threads, "Threads for the kernel and the GEMMs (0: OpenMP default)")->capture_default_str();
  s->add_option("--isa", a->isa, "Kernel path(s), comma-separated: auto, portable, avx2, avx512, avx512bf16")->capture_default_str();
  s->add_option("--repeats", a->repeats, "Timed repeats (medians are reported)")->capture_default_str();
  s->add_option("--seed", a->seed, "Seed of the inputs and the block map")->capture_default_str();
  s->add_option("--json", a->json, "Write the results as JSON to this file");
  s->add_option("--settle-ms", a->settle_ms,
                "Pause before and after the OpenBLAS runs, so that OpenMP and OpenBLAS workers do not busy-wait "
                "against each other")
      ->capture_default_str();
  s->add_flag("--no-gemm", a->no_gemm, "Skip the GEMM ceiling");
  s->add_flag("--no-thin", a->no_thin, "Skip the thin-shape GEMM rates");
  s->callback([a] { run_attention_bench(*a); });
}

namespace {
const Registrar reg("bench", "Benchmarks timed in one run (targets: attention, linear)", [](CLI::App& sub) {
  sub.require_subcommand(1);
  add_attention_bench(sub);
  add_linear_bench(sub);
});
}  // namespace

}  // namespace ditgen::app::bench
