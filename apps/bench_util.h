// Shared pieces of the `ditgen bench` targets: timing, medians, load, the GEMM ceiling.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace CLI {
class App;
}

namespace ditgen::app::bench {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0);
double median(std::vector<double> v);
double load_average();  // 1-minute load average, -1 if unknown
double process_cpu_seconds();
std::vector<std::string> split_list(const std::string& text);  // comma-separated, empties dropped

// bench attention --density: comma-separated numbers in (0, 1]; throws UsageError naming the
// bad item, or saying the list is empty.
std::vector<double> parse_densities(const std::string& text);

// GFLOP/s of wall-clock time and GFLOP per second of process CPU time (what the threads
// actually ran: on a shared machine the second is the steadier figure).
struct GemmRates {
  double eigen = 0, openblas = 0;
  double eigen_cpu = 0, openblas_cpu = 0;
  double best() const { return std::max(eigen, openblas); }
  double best_cpu() const { return std::max(eigen_cpu, openblas_cpu); }
};

// C (m×n) = A (m×k) · B (k×n), median rates over `repeats` after one warm-up; `settle_ms` of
// sleep around the OpenBLAS runs lets busy-waiting OpenMP and OpenBLAS workers stop first.
GemmRates gemm_rates(int64_t m, int64_t n, int64_t k, int threads, int repeats, bool with_openblas, int settle_ms);

// Which OpenBLAS was loaded (dit/gemm.h) and the OPENBLAS_CORETYPE it was loaded with.
void describe_openblas(nlohmann::json& j);

// The targets, each adding its subcommand to `ditgen bench`.
void add_attention_bench(CLI::App& bench);
void add_linear_bench(CLI::App& bench);

}  // namespace ditgen::app::bench
