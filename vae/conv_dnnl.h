#pragma once
// conv_frame (vae/conv.h) through oneDNN's convolutions, where the build has oneDNN: faster than
// the im2col + GEMM tiles on every decoder shape (bench/RESULTS.md: 1.15 to 1.56x in bf16, 2.2x
// on the RGB head, about 1.4x in float32, on an idle 2-core Zen 5). One 2D convolution per
// input frame where it lies (the causal caches keep frames apart), the later ones adding into
// the output through a sum post-op; a nearest x2 frame is built for the upsampling ones.
// Primitives and reordered weights are made on first use for each geometry and kept with the
// weights (ConvWeights::dnnl).
#include <cstdint>

#include "vae/conv.h"

namespace ditgen::vae {

// The build has oneDNN (DITGEN_HAS_ONEDNN).
bool dnnl_available();

// out = conv of `in` as conv_frame computes it; false (nothing written) without oneDNN.
// `T`: float (float weights) or uint16_t (bf16 frames, packed weights).
bool dnnl_conv_frame(const ConvWeights& w, const float* const* in, const ConvGeometry& g, float* out);
bool dnnl_conv_frame(const ConvWeights& w, const uint16_t* const* in, const ConvGeometry& g, float* out);

}  // namespace ditgen::vae
