#pragma once
// The layers of Wan2.1's VAE, run one frame at a time. Every temporal convolution is causal, so a
// stream of frames through layers that each keep the last inputs they need gives the same
// frames as the official chunked schedule (one latent frame per chunk, with each convolution's
// cache of its last two input frames), with only a few frames alive at a time.
#include <cstdlib>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "vae/conv.h"

namespace ditgen::vae {

// Storage for frames of features: left uninitialised (every frame is written in full before it
// is read), and large ones in transparent huge pages, so that the frames allocated and freed
// by every layer cost neither a memset nor a page fault every 4 KiB. (Keeping freed frames for
// reuse saved 4% more at 480 x 832 for 240 MB more peak memory: not done.)
void* allocate_bytes(size_t bytes);
void release_bytes(void* p, size_t bytes);
template <class T>
struct FrameAllocator {
  using value_type = T;
  FrameAllocator() = default;
  template <class U>
  FrameAllocator(const FrameAllocator<U>&) {}
  T* allocate(size_t n) { return static_cast<T*>(allocate_bytes(n * sizeof(T))); }
  void deallocate(T* p, size_t n) { release_bytes(p, n * sizeof(T)); }
  template <class U, class... A>
  void construct(U* p, A&&... a) {
    if constexpr (sizeof...(A) == 0)
      ::new (static_cast<void*>(p)) U;
    else
      ::new (static_cast<void*>(p)) U(std::forward<A>(a)...);
  }
  template <class U>
  bool operator==(const FrameAllocator<U>&) const { return true; }
  template <class U>
  bool operator!=(const FrameAllocator<U>&) const { return false; }
};

// One frame of features, channel-last.
struct Fmap {
  int h = 0, w = 0, c = 0;
  std::vector<float, FrameAllocator<float>> data;  // (H, W, C)
  Fmap() = default;
  Fmap(int h_, int w_, int c_) : h(h_), w(w_), c(c_), data(size_t(h_) * w_ * c_) {}
  int64_t pixels() const { return int64_t(h) * w; }
};

// Wan's RMS_norm: x / max(‖x‖, 1e-12) · sqrt(C) · γ over the channels of each pixel (no bias),
// then SiLU where `silu`. In place.
void rms_norm(Fmap& x, const std::vector<float>& gamma, bool silu);
// The same into a new frame, `x` unchanged.
Fmap rms_normed(const Fmap& x, const std::vector<float>& gamma, bool silu);

// A CausalConv3d with spatial "same" padding: frame t's output reads input frames t - kt + 1
// .. t, zeros before the first. Keeps the last kt - 1 inputs.
class CausalConv {
 public:
  explicit CausalConv(ConvWeights w) : w_(std::move(w)) {}
  Fmap forward(const Fmap& x);
  void reset() { history_.clear(), history_bf16_.clear(); }
  const ConvWeights& weights() const { return w_; }
  ConvWeights& weights() { return w_; }

 private:
  ConvWeights w_;
  // The last kt - 1 inputs, oldest first: float32 frames, or bf16 ones (half the memory) where
  // the weights are packed, as the bf16 GEMM reads its inputs rounded to bf16 anyway.
  std::vector<Fmap> history_;
  std::vector<std::vector<uint16_t, FrameAllocator<uint16_t>>> history_bf16_;
};

// Spatial-only convolution of one frame (kt = 1) with a given geometry.
Fmap conv2d(const ConvWeights& w, const Fmap& x, const ConvGeometry& g);

// RMS_norm, SiLU, conv 3³, RMS_norm, SiLU, conv 3³, plus the input (through a 1³ conv where the
// width changes).
struct ResidualBlock {
  std::vector<float> gamma1, gamma2;  // (Cin), (Cout)
  std::unique_ptr<CausalConv> conv1, conv2;
  std::optional<ConvWeights> shortcut;
  Fmap forward(const Fmap& x);
  void reset();
};

// Self-attention of one frame's pixels: one head as wide as the channels, after RMS_norm.
struct AttentionBlock {
  std::vector<float> gamma;  // (C)
  ConvWeights to_qkv;        // (3C, C): q, k, v in that order
  ConvWeights proj;          // (C, C)
  Fmap forward(const Fmap& x) const;
};

// Wan's Resample in the decoder: nearest x2 then a 3 x 3 conv to half the channels
// ("upsample2d"); "upsample3d" first doubles the frames with a causal (3, 1, 1) conv to 2C
// channels (the first C the earlier new frame), except the stream's first frame, which passes
// alone: so T frames become 1 + 2 (T - 1).
struct Upsample {
  ConvWeights conv;                       // (C/2, C, 1, 3, 3)
  std::unique_ptr<CausalConv> time_conv;  // (2C, C, 3, 1, 1), or null for upsample2d
  bool first = true;
  std::vector<Fmap> forward(Fmap x);
  void reset();
};

// Wan's Resample in the encoder: pad right and bottom, 3 x 3 stride 2 ("downsample2d");
// "downsample3d" then halves the frames with a (3, 1, 1) stride-2 conv over the previous frame
// and the next two, the stream's first frame passing alone: so 1 + 2k frames become 1 + k.
struct Downsample {
  ConvWeights conv;                     // (C, C, 1, 3, 3)
  std::optional<ConvWeights> time_conv; // (C, C, 3, 1, 1)
  std::vector<Fmap> pending;            // the frames the next temporal output reads, oldest first
  bool first = true;
  std::vector<Fmap> forward(Fmap x);
  void reset();
};

}  // namespace ditgen::vae
