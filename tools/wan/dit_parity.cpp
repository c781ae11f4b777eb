// dit_parity: the C++ Wan2.1 DiT against a golden forward file of the official code
// (tools/wan/make_dit_goldens.py; docs/wan-reference.md, "Full 1.3B shape on the GPU machine").
//
//   dit_parity WEIGHTS.safetensors CONFIG.json FORWARD.safetensors [--dtype float32|bf16]
//
// Loads the DiT of WEIGHTS with io::load_wan_dit (heads, text length and eps from the goldens'
// CONFIG.json, key "wan_model"), runs FORWARD's input x at its timestep t with its context as
// tests/wan_dit_test.cpp does (tests/wan_golden.h), and prints max |C++ - official| / max |official|
// for every block's residual stream and for the velocity, the seconds taken and the peak RSS.
// Exit status 0 unless something fails to load or run; the figures are for a person to judge.
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <utility>

#include "core/dtype.h"
#include "dit/gemm_bf16.h"
#include "dit/model.h"
#include "io/safetensors.h"
#include "io/wan_dit.h"
#include "tests/wan_golden.h"

namespace {

double peak_rss_mib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

int usage(const char* argv0) {
  std::fprintf(stderr, "usage: %s WEIGHTS.safetensors CONFIG.json FORWARD.safetensors [--dtype float32|bf16]\n", argv0);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace ditgen;
  std::string paths[3];
  int npaths = 0;
  DType dtype = DType::F32;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--dtype" && i + 1 < argc) {
      const std::string v = argv[++i];
      if (v == "float32" || v == "f32") dtype = DType::F32;
      else if (v == "bf16" || v == "bfloat16") dtype = DType::BF16;
      else return usage(argv[0]);
    } else if (a == "-h" || a == "--help" || npaths == 3 || (!a.empty() && a[0] == '-')) {
      return usage(argv[0]);
    } else {
      paths[npaths++] = a;
    }
  }
  if (npaths != 3) return usage(argv[0]);
  try {
    io::WanDiTSettings settings = wan_golden::settings_from_config(paths[1]);
    settings.dtype = dtype;
    if (dtype == DType::BF16 && !gemm::bf16_gemm_available())
      throw std::runtime_error("--dtype bf16 needs a CPU with AVX-512 BF16, which this one lacks");
    const io::SafetensorsFile g = io::SafetensorsFile::open(paths[2]);

    const auto t0 = std::chrono::steady_clock::now();
    io::LoadedModel lm = io::load_wan_dit(paths[0], settings);
    const DiTConfig cfg = lm.config;
    DiTModel dit(lm.config, std::move(lm.weights));
    const double load_s = seconds_since(t0);
    const double load_rss = peak_rss_mib();
    std::printf("model: %d blocks, dim %d, %d heads, text_len %d, weights %s in memory; loaded in %.1f s, peak RSS %.0f MiB\n",
                cfg.num_layers, cfg.dim, cfg.num_heads, cfg.ctx_len, dtype_name(dtype), load_s, load_rss);

    const auto t1 = std::chrono::steady_clock::now();
    const wan_golden::Forward f = wan_golden::run_forward(dit, g);
    const double fwd_s = seconds_since(t1);

    double worst = 0;
    size_t worst_block = 0;
    for (size_t b = 0; b < f.blocks.size(); ++b) {
      const std::string name = "block." + std::to_string(b);
      if (!g.has(name)) throw std::runtime_error("golden '" + paths[2] + "' has no tensor '" + name + "'");
      const std::vector<float> ref = g.to_float(name);
      if (size_t(f.blocks[b].size()) != ref.size())
        throw std::runtime_error(name + ": " + std::to_string(f.blocks[b].size()) + " values, the golden has " +
                                 std::to_string(ref.size()));
      const double e = wan_golden::rel_error(f.blocks[b].data(), ref);
      std::printf("block %2zu  max rel err %.3g\n", b, e);
      if (e > worst) worst = e, worst_block = b;
    }
    if (g.has("block." + std::to_string(f.blocks.size())))
      throw std::runtime_error("the golden has more blocks than the model's " + std::to_string(f.blocks.size()));
    const double ve = wan_golden::rel_error(f.velocity.data(), g.to_float("velocity"));
    std::printf("worst block: %zu at %.3g\n", worst_block, worst);
    std::printf("velocity     max rel err %.3g\n", ve);
    std::printf("load %.1f s, forward %.2f s, peak RSS %.0f MiB (%s)\n", load_s, fwd_s, peak_rss_mib(),
                dtype_name(dtype));
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dit_parity: %s\n", e.what());
    return 1;
  }
}
