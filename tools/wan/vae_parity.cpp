// vae_parity: the C++ Wan2.1 VAE decoder against a golden decode of the official code at the
// release's widths (tools/wan/make_vae_goldens.py --preset full; docs/wan-vae-reference.md).
//
//   vae_parity WEIGHTS.safetensors DECODE.safetensors [DECODE-1.safetensors ...] [--dtype float32|bf16]
//
// Decodes tensor `z` [16, T, h, w] of the first DECODE file and compares each output frame with
// `video_frame.N` [3, 8h, 8w] (found in any of the DECODE files): max |C++ - official| over
// max |official|, per frame and overall; then the seconds taken and the peak RSS. Exit status 0
// unless something fails to load or run; the figures are for a person to judge.
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "io/wan_vae.h"
#include "tests/wan_golden.h"

int main(int argc, char** argv) {
  using namespace ditgen;
  std::vector<std::string> files;
  DType dtype = DType::F32;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--dtype") == 0 && i + 1 < argc) {
      dtype = std::strcmp(argv[++i], "bf16") == 0 ? DType::BF16 : DType::F32;
    } else {
      files.push_back(argv[i]);
    }
  }
  if (files.size() < 2) {
    std::fprintf(stderr, "usage: vae_parity WEIGHTS.safetensors DECODE.safetensors [MORE.safetensors ...] [--dtype float32|bf16]\n");
    return 2;
  }
  try {
    const auto t0 = std::chrono::steady_clock::now();
    const auto v = io::load_wan_vae(files[0], dtype, false);
    const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::vector<io::SafetensorsFile> goldens;
    for (size_t i = 1; i < files.size(); ++i) goldens.push_back(io::SafetensorsFile::open(files[i]));
    const std::vector<int64_t> zs = goldens[0].tensor("z").shape;
    const std::vector<float> z = wan_golden::to_thwc(goldens[0].to_float("z"), zs);
    const LatentShape shape{int(zs[1]), int(zs[2]), int(zs[3])};
    int frame = 0;
    double worst = 0;
    const auto t1 = std::chrono::steady_clock::now();
    v->decode_stream(z.data(), shape, [&](vae::Fmap&& f) {
      const std::string name = "video_frame." + std::to_string(frame);
      for (const io::SafetensorsFile& g : goldens)
        if (g.has(name)) {
          std::vector<int64_t> s = g.tensor(name).shape;  // [3, H, W]
          const std::vector<float> want = wan_golden::to_thwc(g.to_float(name), {s[0], 1, s[1], s[2]});
          const double err = wan_golden::rel_error(f.data.data(), want);
          worst = std::max(worst, err);
          std::printf("frame %d: %.3g relative\n", frame, err);
        }
      ++frame;
    });
    const double decode_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    std::printf("worst frame: %.3g relative (%s); %d frames of %dx%d; load %.1f s, decode %.1f s; peak RSS %.0f MiB\n",
                worst, dtype == DType::BF16 ? "bf16" : "float32", frame, shape.width * 8, shape.height * 8, load_s,
                decode_s, double(u.ru_maxrss) / 1024.0);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "vae_parity: %s\n", e.what());
    return 1;
  }
  return 0;
}
