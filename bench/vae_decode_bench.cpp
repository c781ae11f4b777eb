// The Wan2.1 VAE decode end to end (issue 19): seconds, peak RSS, and the convolutions'
// GFLOP/s against the square GEMM ceiling measured in the same run (before and after the
// decode, median of --ceiling-repeats each). Latents are seeded N(0, 1); the time of a decode
// does not depend on the values.
//
//   vae_decode_bench VAE.safetensors [--frames 81] [--height 480] [--width 832]
//                    [--dtype bf16|float32] [--ceiling-repeats 5] [--conv onednn|im2col]
//
// VAE.safetensors: the release's Wan2.1_VAE (converted) or a random one of its widths
// (tools/wan/make_vae_goldens.py --preset full --weights-only). Frames are converted to 8 bits
// as the video writer takes them, then dropped: the writer's own time is not in the figure.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <random>
#include <string>
#include <vector>

#include "dit/gemm.h"
#include "dit/gemm_bf16.h"
#include "io/wan_vae.h"
#include "vae/conv.h"

namespace {

using namespace ditgen;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// GFLOP/s of a 2048³ product in the decode's precision: median of `repeats`.
double ceiling(bool bf16, int repeats) {
  const int64_t n = 2048;
  std::mt19937 rng(7);
  std::normal_distribution<float> nd;
  std::vector<float> x(size_t(n * n)), W(x.size()), y(x.size());
  for (float& v : x) v = nd(rng);
  for (float& v : W) v = nd(rng);
  const gemm::PackedBF16 p = bf16 ? gemm::PackedBF16::pack(W.data(), n, n) : gemm::PackedBF16();
  std::vector<double> rates;
  for (int r = 0; r <= repeats; ++r) {  // the first warms up
    const auto t = Clock::now();
    if (bf16)
      gemm::matmul_nt_packed(x.data(), n, p, y.data());
    else
      gemm::matmul_nt(gemm::active_backend(), x.data(), n, n, W.data(), n, y.data());
    if (r > 0) rates.push_back(2.0 * n * n * n / seconds_since(t) * 1e-9);
  }
  std::sort(rates.begin(), rates.end());
  return rates[rates.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: vae_decode_bench VAE.safetensors [--frames N] [--height H] [--width W] "
                         "[--dtype bf16|float32] [--ceiling-repeats N] [--conv onednn|im2col]\n");
    return 2;
  }
  int frames = 81, height = 480, width = 832, repeats = 5;
  std::string dtype = "bf16", conv = vae::conv_backend() == vae::ConvBackend::onednn ? "onednn" : "im2col";
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    if (k == "--frames") frames = std::stoi(argv[i + 1]);
    else if (k == "--height") height = std::stoi(argv[i + 1]);
    else if (k == "--width") width = std::stoi(argv[i + 1]);
    else if (k == "--dtype") dtype = argv[i + 1];
    else if (k == "--ceiling-repeats") repeats = std::stoi(argv[i + 1]);
    else if (k == "--conv") conv = argv[i + 1];
    else {
      std::fprintf(stderr, "vae_decode_bench: unknown option '%s'\n", argv[i]);
      return 2;
    }
  }
  if ((frames - 1) % 4 != 0 || frames < 1 || height % 8 || width % 8 || height < 8 || width < 8 || repeats < 1 ||
      (dtype != "bf16" && dtype != "float32") || (conv != "onednn" && conv != "im2col")) {
    std::fprintf(stderr, "vae_decode_bench: frames must be 1 + 4k, sides positive multiples of 8, dtype bf16 or "
                         "float32, repeats >= 1, conv onednn or im2col\n");
    return 2;
  }
  try {
    vae::set_conv_backend(conv == "onednn" ? vae::ConvBackend::onednn : vae::ConvBackend::im2col);
    const bool bf16 = dtype == "bf16";
    const double before = ceiling(bf16, repeats);
    auto t = Clock::now();
    const auto vae = io::load_wan_vae(argv[1], bf16 ? DType::BF16 : DType::F32, false);
    const double load_s = seconds_since(t);
    const LatentShape shape{1 + (frames - 1) / 4, height / 8, width / 8};
    std::vector<float> z(size_t(shape.frames) * shape.height * shape.width * vae->z_dim);
    std::mt19937 rng(1);
    std::normal_distribution<float> nd;
    for (float& v : z) v = nd(rng);
    const vae::ConvStats c0 = vae::conv_stats();
    int done = 0;
    std::vector<uint8_t> rgb;
    t = Clock::now();
    vae->decode_stream(z.data(), shape, [&](vae::Fmap&& f) {
      rgb.resize(f.data.size());
      for (size_t i = 0; i < rgb.size(); ++i)
        rgb[i] = uint8_t((std::clamp(f.data[i], -1.0f, 1.0f) + 1.0f) / 2.0f * 255.0f);
      if (++done % 8 == 0) std::fprintf(stderr, "%d frames, %.1f s\n", done, seconds_since(t));
    });
    const double decode_s = seconds_since(t);
    const vae::ConvStats c1 = vae::conv_stats();
    const double after = ceiling(bf16, repeats);
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    const double conv_gflop = (c1.flops - c0.flops) * 1e-9, conv_s = c1.seconds - c0.seconds;
    const double ceil = std::max(before, after);
    std::printf("decode %d frames %dx%d (%s, %s convolutions): %.1f s (%.2f s/frame), load %.1f s, peak RSS %.0f MiB\n",
                done, width, height, dtype.c_str(), conv.c_str(), decode_s, decode_s / done, load_s, double(u.ru_maxrss) / 1024.0);
    std::printf("convolutions: %.0f GFLOP in %.1f s (%.0f%% of the decode): %.0f GFLOP/s; GEMM ceiling %.0f / %.0f "
                "GFLOP/s (before / after): %.2f of the higher\n",
                conv_gflop, conv_s, 100.0 * conv_s / decode_s, conv_gflop / conv_s, before, after,
                conv_gflop / conv_s / ceil);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "vae_decode_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
