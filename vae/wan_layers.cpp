#include "vae/wan_layers.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <new>

#include <sys/mman.h>

#include "attention/kernel/kernel.h"
#include "dit/gemm_bf16.h"

namespace ditgen::vae {

namespace {
constexpr size_t kHugePage = size_t(2) << 20;

void norm_pixels(const float* src, float* dst, int64_t pixels, int C, const std::vector<float>& gamma, bool silu) {
  assert(int(gamma.size()) == C);
  const float scale = std::sqrt(float(C));
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < pixels; ++p) {
    const float* v = src + p * C;
    float* o = dst + p * C;
    float ss = 0.0f;
    for (int i = 0; i < C; ++i) ss += v[i] * v[i];
    const float inv = scale / std::max(std::sqrt(ss), 1e-12f);
    for (int i = 0; i < C; ++i) {
      const float y = v[i] * inv * gamma[size_t(i)];
      o[i] = silu ? y / (1.0f + std::exp(-y)) : y;
    }
  }
}

// a += b, element by element.
void add_into(Fmap& a, const Fmap& b) {
  assert(a.data.size() == b.data.size());
  float* x = a.data.data();
  const float* y = b.data.data();
  const int64_t n = int64_t(a.data.size());
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) x[i] += y[i];
}
}  // namespace

void* allocate_bytes(size_t bytes) {
  if (bytes < 2 * kHugePage) {
    void* p = std::malloc(std::max<size_t>(bytes, 1));
    if (!p) throw std::bad_alloc();
    return p;
  }
  const size_t size = (bytes + kHugePage - 1) / kHugePage * kHugePage;
  void* p = std::aligned_alloc(kHugePage, size);
  if (!p) throw std::bad_alloc();
  madvise(p, size, MADV_HUGEPAGE);  // advice: where it is refused, small pages serve
  return p;
}

void release_bytes(void* p, size_t) { std::free(p); }

void rms_norm(Fmap& x, const std::vector<float>& gamma, bool silu) {
  norm_pixels(x.data.data(), x.data.data(), x.pixels(), x.c, gamma, silu);
}

Fmap rms_normed(const Fmap& x, const std::vector<float>& gamma, bool silu) {
  Fmap y(x.h, x.w, x.c);
  norm_pixels(x.data.data(), y.data.data(), x.pixels(), x.c, gamma, silu);
  return y;
}

namespace {
using Bf16Frame = std::vector<uint16_t, FrameAllocator<uint16_t>>;
Bf16Frame to_bf16(const Fmap& x) {
  Bf16Frame b(x.data.size());
  gemm::to_bf16(x.data.data(), int64_t(b.size()), b.data());
  return b;
}

// Appends x to the last kt - 1 inputs, dropping the oldest.
template <class T>
void keep(std::vector<T>& history, T x, int kt) {
  if (kt == 1) return;
  if (int(history.size()) == kt - 1) history.erase(history.begin());
  history.push_back(std::move(x));
}
}  // namespace

Fmap CausalConv::forward(const Fmap& x) {
  assert(x.c == w_.cin);
  const int kt = w_.kt;
  Fmap y(x.h, x.w, w_.cout);
  const ConvGeometry g = ConvGeometry::same(x.h, x.w, w_.kh);
  if (w_.is_bf16()) {
    Bf16Frame xb = to_bf16(x);
    std::vector<const uint16_t*> in(size_t(kt), nullptr);
    const int have = int(history_bf16_.size());
    for (int i = 0; i < have; ++i) in[size_t(kt - 1 - have + i)] = history_bf16_[size_t(i)].data();
    in[size_t(kt - 1)] = xb.data();
    conv_frame(w_, in.data(), g, y.data.data());
    keep(history_bf16_, std::move(xb), kt);
    return y;
  }
  std::vector<const float*> in(size_t(kt), nullptr);
  const int have = int(history_.size());
  for (int i = 0; i < have; ++i) in[size_t(kt - 1 - have + i)] = history_[size_t(i)].data.data();
  in[size_t(kt - 1)] = x.data.data();
  conv_frame(w_, in.data(), g, y.data.data());
  keep(history_, x, kt);
  return y;
}

Fmap conv2d(const ConvWeights& w, const Fmap& x, const ConvGeometry& g) {
  assert(w.kt == 1 && x.c == w.cin && x.h == g.in_h && x.w == g.in_w);
  Fmap y(g.out_h, g.out_w, w.cout);
  if (w.is_bf16() && w.kh * w.kw > 1) {  // a pointwise conv reads the float frame directly
    const Bf16Frame xb = to_bf16(x);
    const uint16_t* in = xb.data();
    conv_frame(w, &in, g, y.data.data());
  } else {
    const float* in = x.data.data();
    conv_frame(w, &in, g, y.data.data());
  }
  return y;
}

Fmap ResidualBlock::forward(const Fmap& x) {
  Fmap a = conv1->forward(rms_normed(x, gamma1, true));
  rms_norm(a, gamma2, true);
  a = conv2->forward(a);
  add_into(a, shortcut ? conv2d(*shortcut, x, ConvGeometry::same(x.h, x.w, 1)) : x);
  return a;
}

void ResidualBlock::reset() {
  conv1->reset();
  conv2->reset();
}

Fmap AttentionBlock::forward(const Fmap& x) const {
  const int C = x.c;
  const int64_t N = x.pixels();
  const Fmap n = rms_normed(x, gamma, false);
  const Fmap qkv = conv2d(to_qkv, n, ConvGeometry::same(x.h, x.w, 1));  // (N, 3C)
  std::vector<float> q(size_t(N * C)), k(q.size()), v(q.size());
  for (int64_t p = 0; p < N; ++p) {
    const float* r = qkv.data.data() + p * 3 * C;
    std::copy_n(r, C, q.data() + p * C);
    std::copy_n(r + C, C, k.data() + p * C);
    std::copy_n(r + 2 * C, C, v.data() + p * C);
  }
  Fmap o(x.h, x.w, C);
  attn::AttentionKernel().run(attn::self_attention(q.data(), k.data(), v.data(), o.data.data(), 1, N, C, nullptr));
  Fmap y = conv2d(proj, o, ConvGeometry::same(x.h, x.w, 1));
  add_into(y, x);
  return y;
}

std::vector<Fmap> Upsample::forward(Fmap x) {
  std::vector<Fmap> frames;
  if (!time_conv || first) {
    first = false;
    frames.push_back(std::move(x));
  } else {
    const int C = x.c;
    const Fmap two = time_conv->forward(x);  // (H, W, 2C)
    for (int half = 0; half < 2; ++half) {
      Fmap f(x.h, x.w, C);
#pragma omp parallel for schedule(static)
      for (int64_t p = 0; p < x.pixels(); ++p)
        std::copy_n(two.data.data() + p * 2 * C + half * C, C, f.data.data() + p * C);
      frames.push_back(std::move(f));
    }
  }
  for (Fmap& f : frames) f = conv2d(conv, f, ConvGeometry::same(f.h, f.w, 3, 2));
  return frames;
}

void Upsample::reset() {
  first = true;
  if (time_conv) time_conv->reset();
}

std::vector<Fmap> Downsample::forward(Fmap x) {
  Fmap y = conv2d(conv, x, ConvGeometry::down2(x.h, x.w, 3));
  std::vector<Fmap> out;
  if (!time_conv) {
    out.push_back(std::move(y));
    return out;
  }
  if (first) {
    first = false;
    pending.push_back(y);
    out.push_back(std::move(y));
    return out;
  }
  pending.push_back(std::move(y));
  if (pending.size() == 3) {
    const float* in[3] = {pending[0].data.data(), pending[1].data.data(), pending[2].data.data()};
    Fmap t(pending[0].h, pending[0].w, time_conv->cout);
    conv_frame(*time_conv, in, ConvGeometry::same(t.h, t.w, 1), t.data.data());
    out.push_back(std::move(t));
    pending.erase(pending.begin(), pending.begin() + 2);
  }
  return out;
}

void Downsample::reset() {
  first = true;
  pending.clear();
}

}  // namespace ditgen::vae
