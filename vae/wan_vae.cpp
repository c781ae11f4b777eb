#include "vae/wan_vae.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace ditgen::vae {

Fmap ConvLayer::forward(Fmap x) {
  if (!gamma.empty()) rms_norm(x, gamma, true);
  return conv->forward(x);
}

namespace {

template <class... F>
struct Overload : F... {
  using F::operator()...;
};
template <class... F>
Overload(F...) -> Overload<F...>;

std::vector<Fmap> one(Fmap x) {
  std::vector<Fmap> v;
  v.push_back(std::move(x));
  return v;
}

}  // namespace

void LayerStream::run(size_t i, Fmap x, const Sink& sink) {
  for (; i < layers.size(); ++i) {
    std::vector<Fmap> out = std::visit(
        Overload{[&](ConvLayer& l) { return one(l.forward(std::move(x))); },
                 [&](ResidualBlock& l) { return one(l.forward(x)); },
                 [&](AttentionBlock& l) { return one(l.forward(x)); },
                 [&](Upsample& l) { return l.forward(std::move(x)); },
                 [&](Downsample& l) { return l.forward(std::move(x)); }},
        layers[i]);
    if (out.size() != 1) {
      for (Fmap& f : out) run(i + 1, std::move(f), sink);
      return;
    }
    x = std::move(out[0]);
  }
  sink(std::move(x));
}

void LayerStream::reset() {
  for (Layer& l : layers)
    std::visit(Overload{[](ConvLayer& c) { c.conv->reset(); }, [](ResidualBlock& r) { r.reset(); },
                        [](AttentionBlock&) {}, [](Upsample& u) { u.reset(); }, [](Downsample& d) { d.reset(); }},
               l);
}

int64_t LayerStream::weight_bytes() const {
  int64_t b = 0;
  for (const Layer& l : layers)
    std::visit(Overload{[&](const ConvLayer& c) { b += int64_t(c.gamma.size()) * 4 + c.conv->weights().bytes(); },
                        [&](const ResidualBlock& r) {
                          b += int64_t(r.gamma1.size() + r.gamma2.size()) * 4 + r.conv1->weights().bytes() +
                               r.conv2->weights().bytes() + (r.shortcut ? r.shortcut->bytes() : 0);
                        },
                        [&](const AttentionBlock& a) {
                          b += int64_t(a.gamma.size()) * 4 + a.to_qkv.bytes() + a.proj.bytes();
                        },
                        [&](const Upsample& u) { b += u.conv.bytes() + (u.time_conv ? u.time_conv->weights().bytes() : 0); },
                        [&](const Downsample& d) { b += d.conv.bytes() + (d.time_conv ? d.time_conv->bytes() : 0); }},
               l);
  return b;
}

void LayerStream::pack_bf16() {
  for (Layer& l : layers)
    std::visit(Overload{[](ConvLayer& c) { c.conv->weights().pack_bf16(); },
                        [](ResidualBlock& r) {
                          r.conv1->weights().pack_bf16();
                          r.conv2->weights().pack_bf16();
                          if (r.shortcut) r.shortcut->pack_bf16();
                        },
                        // The attention's q, k, v and output projections stay float32, as does
                        // the attention itself: they are a small share of the work.
                        [](AttentionBlock&) {},
                        [](Upsample& u) {
                          u.conv.pack_bf16();
                          if (u.time_conv) u.time_conv->weights().pack_bf16();
                        },
                        [](Downsample& d) {
                          d.conv.pack_bf16();
                          if (d.time_conv) d.time_conv->pack_bf16();
                        }},
               l);
}

const std::vector<float>& wan21_latents_mean() {
  static const std::vector<float> v = {-0.7571f, -0.7089f, -0.9113f, 0.1075f,  -0.1745f, 0.9653f,
                                       -0.1517f, 1.5508f,  0.4134f,  -0.0715f, 0.5517f,  -0.3632f,
                                       -0.1922f, -0.9497f, 0.2503f,  -0.2921f};
  return v;
}

const std::vector<float>& wan21_latents_std() {
  static const std::vector<float> v = {2.8184f, 1.4541f, 2.3275f, 2.6558f, 1.2196f, 1.7708f, 2.6052f, 2.0743f,
                                       3.2687f, 2.1526f, 2.8652f, 1.5579f, 1.6382f, 1.1253f, 2.8251f, 1.9160f};
  return v;
}

namespace {
// Wan's video writer: clamp to [-1, 1], then trunc((x + 1) / 2 · 255).
uint8_t to_8bit(float v) { return uint8_t((std::clamp(v, -1.0f, 1.0f) + 1.0f) / 2.0f * 255.0f); }

void check_frame(const Fmap& x, int h, int w) {
  if (x.h != h || x.w != w || x.c != 3)
    throw std::logic_error("VAE decoder produced a frame of " + std::to_string(x.h) + " x " + std::to_string(x.w) +
                           " x " + std::to_string(x.c) + ", expected " + std::to_string(h) + " x " + std::to_string(w) + " x 3");
}

void check_count(int produced, int expected) {
  if (produced != expected)
    throw std::logic_error("VAE decoder produced " + std::to_string(produced) + " frames, expected " + std::to_string(expected));
}
}  // namespace

void WanVae::decode_stream(const float* latent, const LatentShape& shape, const LayerStream::Sink& sink) const {
  decoder.reset();
  const int64_t cells = int64_t(shape.height) * shape.width;
  for (int t = 0; t < shape.frames; ++t) {
    // The official code multiplies by scale[1] = 1 / std in float32; dividing by that float
    // reproduces its rounding.
    Fmap z(shape.height, shape.width, z_dim);
    const float* src = latent + t * cells * z_dim;
    for (int64_t p = 0; p < cells; ++p)
      for (int c = 0; c < z_dim; ++c) {
        const float inv_std = 1.0f / std[size_t(c)];
        z.data[size_t(p * z_dim + c)] = src[p * z_dim + c] / inv_std + mean[size_t(c)];
      }
    decoder.push(conv2d(post_quant, z, ConvGeometry::same(z.h, z.w, 1)), sink);
  }
  decoder.reset();
}

Frames WanVae::decode(const float* latent, const LatentShape& shape, int channels) const {
  if (channels != z_dim)
    throw std::invalid_argument("latents have " + std::to_string(channels) + " channels, the VAE expects " +
                                std::to_string(z_dim));
  if (tiling.on() && (shape.height > tiling.size || shape.width > tiling.size)) return decode_tiles(latent, shape);
  Frames f;
  f.frames = 1 + 4 * (shape.frames - 1);
  f.height = shape.height * 8, f.width = shape.width * 8, f.channels = 3;
  f.data.reserve(size_t(f.frames) * f.height * f.width * 3);
  int produced = 0;
  decode_stream(latent, shape, [&](Fmap&& x) {
    check_frame(x, f.height, f.width);
    for (float v : x.data) f.data.push_back(to_8bit(v));
    ++produced;
  });
  check_count(produced, f.frames);
  return f;
}

Frames WanVae::decode_tiles(const float* latent, const LatentShape& shape) const {
  tiling.validate();
  Frames f;
  f.frames = 1 + 4 * (shape.frames - 1);
  f.height = shape.height * 8, f.width = shape.width * 8, f.channels = 3;
  const int64_t px = int64_t(f.height) * f.width;
  std::vector<float> sum(size_t(f.frames * px * 3), 0.0f), weight(size_t(px), 0.0f);  // (T, H, W, 3), (H, W)
  const std::vector<TileSpan> rows = tile_spans(shape.height, tiling), cols = tile_spans(shape.width, tiling);
  std::vector<float> tile;
  for (const TileSpan& ry : rows)
    for (const TileSpan& rx : cols) {
      // The tile's latent, (T, ry.length, rx.length, Z).
      tile.resize(size_t(shape.frames) * ry.length * rx.length * z_dim);
      for (int t = 0; t < shape.frames; ++t)
        for (int y = 0; y < ry.length; ++y)
          std::copy_n(latent + ((int64_t(t) * shape.height + ry.start + y) * shape.width + rx.start) * z_dim,
                      size_t(rx.length) * z_dim, tile.data() + (int64_t(t) * ry.length + y) * rx.length * z_dim);
      std::vector<float> wy(size_t(ry.length) * 8), wx(size_t(rx.length) * 8);
      for (int y = 0; y < ry.length * 8; ++y) wy[size_t(y)] = tile_weight(ry, y, 8);
      for (int x = 0; x < rx.length * 8; ++x) wx[size_t(x)] = tile_weight(rx, x, 8);
      for (int y = 0; y < ry.length * 8; ++y)
        for (int x = 0; x < rx.length * 8; ++x)
          weight[size_t((ry.start * 8 + y) * f.width + rx.start * 8 + x)] += wy[size_t(y)] * wx[size_t(x)];
      int t = 0;
      decode_stream(tile.data(), {shape.frames, ry.length, rx.length}, [&](Fmap&& x) {
        check_frame(x, ry.length * 8, rx.length * 8);
        if (t >= f.frames) check_count(t + 1, f.frames);
#pragma omp parallel for
        for (int y = 0; y < x.h; ++y) {
          float* dst = sum.data() + ((int64_t(t) * f.height + ry.start * 8 + y) * f.width + rx.start * 8) * 3;
          const float* src = x.data.data() + int64_t(y) * x.w * 3;
          for (int i = 0; i < x.w; ++i)
            for (int c = 0; c < 3; ++c) dst[i * 3 + c] += wy[size_t(y)] * wx[size_t(i)] * src[i * 3 + c];
        }
        ++t;
      });
      check_count(t, f.frames);
    }
  f.data.resize(sum.size());
  for (int64_t i = 0; i < int64_t(sum.size()); ++i) f.data[size_t(i)] = to_8bit(sum[size_t(i)] / weight[size_t((i / 3) % px)]);
  return f;
}

std::vector<float> WanVae::encode(const std::vector<Fmap>& video, LatentShape* shape) const {
  if (!has_encoder()) throw std::invalid_argument("this VAE file has no encoder");
  if (video.empty() || (video.size() - 1) % 4 != 0)
    throw std::invalid_argument("video of " + std::to_string(video.size()) + " frames: expected 1 + 4k");
  const int H = video[0].h, W = video[0].w;
  if (H % 8 != 0 || W % 8 != 0)
    throw std::invalid_argument("frames of " + std::to_string(H) + " x " + std::to_string(W) +
                                ": expected sides that are multiples of 8");
  encoder.reset();
  std::vector<float> out;
  int latent_frames = 0;
  const auto sink = [&](Fmap&& x) {
    const Fmap q = conv2d(quant, x, ConvGeometry::same(x.h, x.w, 1));  // (h, w, 2Z): mean, log-variance
    for (int64_t p = 0; p < q.pixels(); ++p)
      for (int c = 0; c < z_dim; ++c) {
        const float inv_std = 1.0f / std[size_t(c)];
        out.push_back((q.data[size_t(p * 2 * z_dim + c)] - mean[size_t(c)]) * inv_std);
      }
    ++latent_frames;
  };
  for (const Fmap& f : video) {
    if (f.h != H || f.w != W || f.c != 3)
      throw std::invalid_argument("frames differ in size or are not RGB");
    encoder.push(f, sink);
  }
  encoder.reset();
  *shape = LatentShape{latent_frames, H / 8, W / 8};
  return out;
}

int64_t WanVae::weight_bytes() const {
  return decoder.weight_bytes() + encoder.weight_bytes() + post_quant.bytes() + quant.bytes();
}

void WanVae::pack_bf16() {
  decoder.pack_bf16();
  encoder.pack_bf16();
}

}  // namespace ditgen::vae
