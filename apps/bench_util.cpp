#include "apps/bench_util.h"

#include "dit/gemm.h"

#include <unistd.h>

#include <Eigen/Core>
#include <algorithm>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <thread>


namespace ditgen::app::bench {

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double load_average() {
  std::ifstream f("/proc/loadavg");
  double x = -1;
  if (f) f >> x;
  return x;
}

double process_cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}

GemmRates gemm_rates(int64_t m, int64_t n, int64_t k, int threads, int repeats, bool with_openblas, int settle_ms) {
  GemmRates r;
  Eigen::MatrixXf a = Eigen::MatrixXf::Random(m, k), b = Eigen::MatrixXf::Random(k, n), c(m, n);
  const double flops = 2.0 * double(m) * double(n) * double(k);
  auto time = [&](auto&& f, double& wall_rate, double& cpu_rate) {
    std::vector<double> t, tc;
    for (int i = 0; i <= repeats; ++i) {
      const double c0 = process_cpu_seconds();
      const auto t0 = Clock::now();
      f();
      if (i > 0) {
        t.push_back(seconds_since(t0));
        tc.push_back(process_cpu_seconds() - c0);
      }
    }
    wall_rate = flops / median(t) / 1e9;
    cpu_rate = flops / median(tc) / 1e9;
  };
  Eigen::setNbThreads(threads);
  time([&] { c.noalias() = a * b; }, r.eigen, r.eigen_cpu);
  if (with_openblas && gemm::openblas_available()) {
    // Let OpenMP workers that still spin from the previous region stop before OpenBLAS's timed
    // runs start, and OpenBLAS's before the next bench; --settle-ms 0 shows what that costs.
    std::this_thread::sleep_for(std::chrono::milliseconds(settle_ms));
    // Same flop count as A·B: A (m×k) times the k×n buffer read as an n×k matrix, transposed.
    time([&] { gemm::matmul_nt(gemm::Backend::openblas, a.data(), m, k, b.data(), n, c.data()); }, r.openblas,
         r.openblas_cpu);
    std::this_thread::sleep_for(std::chrono::milliseconds(settle_ms));
  }
  return r;
}


std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

void describe_openblas(nlohmann::json& j) {
  j["openblas"] = gemm::openblas_description();
  j["openblas_coretype_env"] = std::getenv("OPENBLAS_CORETYPE") ? std::getenv("OPENBLAS_CORETYPE") : "";
}


}  // namespace ditgen::app::bench
