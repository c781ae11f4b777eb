#pragma once
// One output frame of a (causal) 3D convolution over channel-last frames, as im2col tiles and
// a GEMM: a tile of output pixels gathers its kt x kh x kw x Cin inputs into a row each, and
// rows x Wᵀ gives their Cout outputs. Nearest x2 upsampling in front of the convolution is read
// through the gather (the upsampled frame is never built), and a stride-2 convolution with its
// pad on the right and bottom (Wan's downsampling) is one more geometry of the same gather.
#include <cstdint>
#include <memory>
#include <vector>

#include "dit/gemm_bf16.h"

namespace ditgen::vae {

namespace detail {
struct DnnlPlans;  // vae/conv_dnnl.cpp
}

// Weights of one convolution, reordered for the GEMM: row o of `w` is output channel o's taps in
// (dt, dy, dx, ci) order, so a gathered row is kt x kh x kw runs of Cin contiguous inputs.
struct ConvWeights {
  int cout = 0, cin = 0, kt = 1, kh = 1, kw = 1;
  std::vector<float> w;        // (Cout, kt, kh, kw, Cin); empty once packed
  gemm::PackedBF16 packed;     // the same as bf16, when the model runs in bf16
  std::vector<float> bias;     // (Cout)
  // oneDNN's primitives and weights for each geometry met, made on first use (vae/conv_dnnl.h).
  mutable std::shared_ptr<detail::DnnlPlans> dnnl;
  int64_t k() const { return int64_t(kt) * kh * kw * cin; }
  bool is_bf16() const { return !packed.empty(); }
  // Rounds `w` to bf16 and packs it for the bf16 GEMM (then `w` is released).
  void pack_bf16();
  // From PyTorch's (Cout, Cin, kt, kh, kw) order.
  static ConvWeights from_torch(const float* w, const float* bias, int cout, int cin, int kt, int kh, int kw);
  int64_t bytes() const;
};

// Output frame geometry: input frames (in_h, in_w, Cin), read through nearest upsampling by
// `upsample`; output pixel (y, x) takes input rows y * stride + dy - pad_top (in upsampled
// coordinates), zero outside.
struct ConvGeometry {
  int in_h = 0, in_w = 0;
  int upsample = 1, stride = 1;
  int pad_top = 0, pad_left = 0;
  int out_h = 0, out_w = 0;
  // "Same" size, kernel k x k with pad (k - 1) / 2 on every side, after `upsample`.
  static ConvGeometry same(int in_h, int in_w, int k, int upsample = 1);
  // Wan's downsampling: pad one zero column right and one row bottom, then k x k stride 2.
  static ConvGeometry down2(int in_h, int in_w, int k);
};

// Which implementation conv_frame runs: oneDNN's convolutions (the default where the build has
// oneDNN: vae/conv_dnnl.h) or the im2col tiles + GEMM below (the default otherwise). Process-wide.
enum class ConvBackend { im2col, onednn };
ConvBackend conv_backend();
// Throws std::invalid_argument for onednn in a build without it.
void set_conv_backend(ConvBackend b);

// out (out_h, out_w, Cout) = bias + Σ_taps W · in. `in` holds kt frame pointers, oldest first;
// nullptr stands for a frame of zeros. Float weights go through the process's GEMM backend
// (gemm::active_backend), packed ones through the bf16 kernel (the im2col backend; oneDNN
// takes float weights with float frames, packed ones with bf16 frames). OpenMP inside.
void conv_frame(const ConvWeights& w, const float* const* in, const ConvGeometry& g, float* out);

// The same with the input frames as bf16 bit patterns (what the bf16 GEMM rounds its inputs to:
// stored so, a frame takes half the memory and the gather half the bytes) and packed weights.
// With im2col, bit-identical to the float overload on the frames these round from, except where Cout is
// at most kNarrowOutputs: those convolutions (the RGB head) run a direct kernel, as a GEMM of 3
// outputs would fill few lanes, and sum in another order.
constexpr int kNarrowOutputs = 8;
void conv_frame(const ConvWeights& w, const uint16_t* const* in, const ConvGeometry& g, float* out);

// The work conv_frame (both overloads) has done in this process: multiply-adds x 2 and wall
// seconds inside it, for benchmarks (bench/vae_decode_bench.cpp).
struct ConvStats {
  double flops = 0, seconds = 0;
};
ConvStats conv_stats();
namespace detail {
// Adds one call that began at `start` (steady_clock seconds) and did `flops`.
void count_conv(double flops, double start);
double now_seconds();
}  // namespace detail

// Plain twin for the tests: direct loops, double accumulation, the weights as stored (bf16
// weights unpacked; inputs then rounded to bf16 as the kernel rounds them).
void conv_frame_ref(const ConvWeights& w, const float* const* in, const ConvGeometry& g, float* out);

}  // namespace ditgen::vae
