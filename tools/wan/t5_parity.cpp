// t5_parity: the C++ umT5 encoder against a golden file of the official code
// (tools/wan/make_t5_goldens.py; docs/wan-t5-reference.md).
//
//   t5_parity WEIGHTS.safetensors GOLDENS.safetensors [--dtype float32|bf16] [--repeat N]
//
// Loads WEIGHTS with cond::UmT5Encoder, encodes every `ids.L` of GOLDENS and prints
// max |C++ - official| / max |official| for `states.L` and, for the input as long as `block.0`,
// for every block's residual stream; then the seconds of each encode (the first one reads the
// weights from the file; --repeat runs it again) and the peak RSS. Exit status 0 unless something
// fails to load or run; the figures are for a person to judge.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

#include "cond/umt5.h"
#include "core/dtype.h"
#include "io/safetensors.h"

namespace {

double peak_rss_mib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_maxrss) / 1024.0;  // KiB on Linux
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double rel_error(const float* a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    num = std::max(num, std::fabs(double(a[i]) - double(b[i])));
    den = std::max(den, std::fabs(double(b[i])));
  }
  return num / den;
}

int usage(const char* argv0) {
  std::fprintf(stderr, "usage: %s WEIGHTS.safetensors GOLDENS.safetensors [--dtype float32|bf16] [--repeat N]\n", argv0);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace ditgen;
  std::vector<std::string> paths;
  DType dtype = DType::F32;
  int repeat = 1;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--dtype" && i + 1 < argc) {
      const std::string v = argv[++i];
      if (v == "float32" || v == "f32") dtype = DType::F32;
      else if (v == "bf16" || v == "bfloat16") dtype = DType::BF16;
      else return usage(argv[0]);
    } else if (a == "--repeat" && i + 1 < argc) {
      repeat = std::atoi(argv[++i]);
      if (repeat < 1) return usage(argv[0]);
    } else if (a.empty() || a[0] == '-' || paths.size() == 2) {
      return usage(argv[0]);
    } else {
      paths.push_back(a);
    }
  }
  if (paths.size() != 2) return usage(argv[0]);
  try {
    const io::SafetensorsFile g = io::SafetensorsFile::open(paths[1]);
    const auto t0 = std::chrono::steady_clock::now();
    const cond::UmT5Encoder e = cond::UmT5Encoder::load(paths[0], dtype);
    const cond::UmT5Config& c = e.config();
    std::printf("encoder: vocab %lld, dim %lld, dim_attn %lld, dim_ffn %lld, %d heads, %d blocks, %d buckets; "
                "computing in %s; loaded in %.2f s, peak RSS %.0f MiB\n",
                (long long)c.vocab, (long long)c.dim, (long long)c.dim_attn, (long long)c.dim_ffn, c.num_heads,
                c.num_layers, c.num_buckets, dtype_name(dtype), seconds_since(t0), peak_rss_mib());
    const int64_t block_len = g.has("block.0") ? g.tensor("block.0").shape.at(0) : -1;
    double worst = 0;
    for (const io::SafetensorsTensor& t : g.tensors()) {
      if (t.name.rfind("ids.", 0) != 0) continue;
      const std::string L = t.name.substr(4);
      const std::vector<float> f = g.to_float(t.name);
      const std::vector<int32_t> ids(f.begin(), f.end());
      for (int r = 0; r < repeat; ++r) {
        std::vector<Tensor> blocks;
        const auto t1 = std::chrono::steady_clock::now();
        const Tensor s = e.encode(ids, int64_t(ids.size()) == block_len ? &blocks : nullptr);
        const double secs = seconds_since(t1);
        const double err = rel_error(s.data(), g.to_float("states." + L));
        worst = std::max(worst, err);
        std::printf("%s tokens (run %d): states %.3g; %.2f s, peak RSS %.0f MiB\n", L.c_str(), r + 1, err, secs,
                    peak_rss_mib());
        if (r > 0) continue;
        for (size_t b = 0; b < blocks.size(); ++b) {
          const std::string name = "block." + std::to_string(b);
          if (!g.has(name)) continue;
          const double eb = rel_error(blocks[b].data(), g.to_float(name));
          worst = std::max(worst, eb);
          std::printf("  %s: %.3g\n", name.c_str(), eb);
        }
      }
    }
    std::printf("worst: %.3g\n", worst);
  } catch (const std::exception& x) {
    std::fprintf(stderr, "t5_parity: %s\n", x.what());
    return 1;
  }
  return 0;
}
