#pragma once
// Shared test helpers: random inputs, error norms, running the ditgen binary.
#include <array>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace ditgen::test {

inline std::vector<float> random_vector(size_t n, std::mt19937_64& rng, float scale = 1.0f) {
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// A generator seeded from the clock unless DITGEN_TEST_SEED is set; the seed is printed so a
// failure can be replayed.
inline std::mt19937_64 fresh_rng() {
  const char* env = std::getenv("DITGEN_TEST_SEED");
  const uint64_t seed = env ? std::strtoull(env, nullptr, 10) : std::random_device{}();
  std::printf("[ random seed %llu (set DITGEN_TEST_SEED to replay) ]\n", static_cast<unsigned long long>(seed));
  return std::mt19937_64(seed);
}

// ||a - b||² / ||b||²
inline double nmse(const float* a, const float* b, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; ++i) {
    const double d = double(a[i]) - double(b[i]);
    num += d * d;
    den += double(b[i]) * double(b[i]);
  }
  return den > 0 ? num / den : num;
}

inline double max_abs_diff(const float* a, const float* b, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; ++i) m = std::max(m, std::fabs(double(a[i]) - double(b[i])));
  return m;
}

struct RunResult {
  int status;
  std::string output;  // stdout and stderr together
};

// Runs the ditgen binary with arguments (shell-quoted by the caller where needed).
inline RunResult run_ditgen(const std::string& args) {
  const std::string cmd = std::string(DITGEN_BINARY) + " " + args + " 2>&1";
  RunResult r{-1, {}};
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf{};
  size_t got;
  while ((got = fread(buf.data(), 1, buf.size(), p)) > 0) r.output.append(buf.data(), got);
  const int st = pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

// A fresh empty directory under the system temp dir, removed by the destructor.
struct TempDir {
  std::filesystem::path path;
  TempDir() {
    path = std::filesystem::temp_directory_path() /
           ("ditgen-test-" + std::to_string(std::random_device{}()) + "-" + std::to_string(::getpid()));
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

// Every path under `dir`, relative to it: what a run added or left behind.
inline std::set<std::string> listing(const std::filesystem::path& dir) {
  std::set<std::string> s;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir))
    s.insert(std::filesystem::relative(e.path(), dir).string());
  return s;
}

}  // namespace ditgen::test
