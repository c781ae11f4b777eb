#include "vae/wan_layers.h"

#include <algorithm>
#include <cassert>
#include <cmath>

#include "attention/kernel/kernel.h"

namespace ditgen::vae {

void rms_norm(Fmap& x, const std::vector<float>& gamma, bool silu) {
  assert(int(gamma.size()) == x.c);
  const int C = x.c;
  const float scale = std::sqrt(float(C));
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < x.pixels(); ++p) {
    float* v = x.data.data() + p * C;
    float ss = 0.0f;
    for (int i = 0; i < C; ++i) ss += v[i] * v[i];
    const float inv = scale / std::max(std::sqrt(ss), 1e-12f);
    for (int i = 0; i < C; ++i) {
      const float y = v[i] * inv * gamma[size_t(i)];
      v[i] = silu ? y / (1.0f + std::exp(-y)) : y;
    }
  }
}

Fmap CausalConv::forward(const Fmap& x) {
  assert(x.c == w_.cin);
  const int kt = w_.kt;
  std::vector<const float*> in(size_t(kt), nullptr);
  const int have = int(history_.size());
  for (int i = 0; i < have; ++i) in[size_t(kt - 1 - have + i)] = history_[size_t(i)].data.data();
  in[size_t(kt - 1)] = x.data.data();
  Fmap y(x.h, x.w, w_.cout);
  conv_frame(w_, in.data(), ConvGeometry::same(x.h, x.w, w_.kh), y.data.data());
  if (kt > 1) {
    if (int(history_.size()) == kt - 1) history_.erase(history_.begin());
    history_.push_back(x);
  }
  return y;
}

Fmap conv2d(const ConvWeights& w, const Fmap& x, const ConvGeometry& g) {
  assert(w.kt == 1 && x.c == w.cin && x.h == g.in_h && x.w == g.in_w);
  Fmap y(g.out_h, g.out_w, w.cout);
  const float* in = x.data.data();
  conv_frame(w, &in, g, y.data.data());
  return y;
}

Fmap ResidualBlock::forward(const Fmap& x) {
  Fmap a = x;
  rms_norm(a, gamma1, true);
  a = conv1->forward(a);
  rms_norm(a, gamma2, true);
  a = conv2->forward(a);
  if (shortcut) {
    const Fmap h = conv2d(*shortcut, x, ConvGeometry::same(x.h, x.w, 1));
    for (size_t i = 0; i < a.data.size(); ++i) a.data[i] += h.data[i];
  } else {
    for (size_t i = 0; i < a.data.size(); ++i) a.data[i] += x.data[i];
  }
  return a;
}

void ResidualBlock::reset() {
  conv1->reset();
  conv2->reset();
}

Fmap AttentionBlock::forward(const Fmap& x) const {
  const int C = x.c;
  const int64_t N = x.pixels();
  Fmap n = x;
  rms_norm(n, gamma, false);
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
  for (size_t i = 0; i < y.data.size(); ++i) y.data[i] += x.data[i];
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
