#include "pipeline/vae_run.h"

#include <chrono>
#include <stdexcept>

#include "dit/gemm_bf16.h"
#include "eval/metrics.h"
#include "io/video.h"
#include "io/wan_vae.h"
#include "pipeline/wan.h"

namespace ditgen::pipeline {

namespace {
using Clock = std::chrono::steady_clock;
double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// 8-bit RGB frames as the VAE's input, x / 255 · 2 - 1 (torchvision's to_tensor, then
// normalised by mean 0.5 and std 0.5, as Wan's image-to-video code does).
std::vector<vae::Fmap> to_video(const Frames& f) {
  std::vector<vae::Fmap> v;
  for (int t = 0; t < f.frames; ++t) {
    vae::Fmap m(f.height, f.width, 3);
    const uint8_t* src = f.frame(t);
    for (size_t i = 0; i < m.data.size(); ++i) m.data[i] = (float(src[i]) / 255.0f - 0.5f) / 0.5f;
    v.push_back(std::move(m));
  }
  return v;
}
}  // namespace

VaeRunResult run_vae(const VaeRunOptions& opt) {
  if (opt.decode.empty() && opt.encode.empty()) throw std::invalid_argument("nothing to do: give --decode or --encode");
  if (!opt.decode.empty() && !opt.encode.empty())
    throw std::invalid_argument("give --decode FILE or --encode VIDEO, not both (--encode VIDEO --roundtrip decodes what it encodes)");
  const DType dtype = opt.dtype.value_or(gemm::bf16_gemm_available() ? DType::BF16 : DType::F32);
  if (dtype == DType::BF16 && !gemm::bf16_gemm_available())
    throw std::invalid_argument("--dtype bf16 needs a CPU with AVX-512 BF16, which this one lacks: use --dtype float32");
  const std::unique_ptr<vae::WanVae> v = io::load_wan_vae(io::locate_wan_vae(opt.model), dtype, !opt.encode.empty());
  v->tiling = opt.tiling;
  VaeRunResult r;
  r.dtype = dtype == DType::BF16 ? "bf16" : "float32";
  r.weights_mb = double(v->weight_bytes()) / (1 << 20);
  Frames input;
  if (!opt.encode.empty()) {
    if (!v->has_encoder()) throw std::runtime_error("VAE '" + opt.model + "' has no encoder tensors (encoder.*)");
    input = io::read_frames(opt.encode, 3);
    const auto t0 = Clock::now();
    r.latents = v->encode(to_video(input), &r.shape);
    r.encode_seconds = since(t0);
    r.channels = v->z_dim;
  } else {
    r.latents = read_latents_file(opt.decode, r.shape, r.channels);
  }
  if (opt.decode.empty() && !opt.roundtrip) return r;
  const auto t0 = Clock::now();
  r.frames = v->decode(r.latents.data(), r.shape, r.channels);
  r.decode_seconds = since(t0);
  if (!opt.encode.empty()) {
    std::vector<float> a(input.data.begin(), input.data.end()), b(r.frames.data.begin(), r.frames.data.end());
    r.roundtrip_psnr_db = eval::psnr(a.data(), b.data(), int64_t(a.size()), 255.0);
  }
  return r;
}

}  // namespace ditgen::pipeline
