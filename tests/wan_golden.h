#pragma once
// Running the C++ DiT on a Wan2.1 golden forward file written by tools/wan/make_dit_goldens.py
// (docs/wan-reference.md): shared by tests/wan_dit_test.cpp (the committed tiny goldens) and
// tools/wan/dit_parity.cpp (the full 1.3B shape recorded on the GPU machine).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "attention/backend.h"
#include "dit/model.h"
#include "io/safetensors.h"
#include "io/wan_dit.h"

namespace ditgen::wan_golden {

// The settings the weights do not hold, from the goldens' PREFIX_config.json ("wan_model").
inline io::WanDiTSettings settings_from_config(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open golden config '" + path + "'");
  const nlohmann::json j = nlohmann::json::parse(in);
  const nlohmann::json& m = j.at("wan_model");
  io::WanDiTSettings s;
  s.num_heads = m.at("num_heads").get<int>();
  s.text_len = m.at("text_len").get<int>();
  s.eps = m.at("eps").get<double>();
  return s;
}

// max |a - b| / max |b|
inline double rel_error(const float* a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    num = std::max(num, std::fabs(double(a[i]) - double(b[i])));
    den = std::max(den, std::fabs(double(b[i])));
  }
  return num / den;
}

// [C, T, H, W] <-> the engine's [T, H, W, C].
inline std::vector<float> to_thwc(const std::vector<float>& x, const std::vector<int64_t>& s) {
  std::vector<float> y(x.size());
  const int64_t C = s[0], P = s[1] * s[2] * s[3];
  for (int64_t c = 0; c < C; ++c)
    for (int64_t p = 0; p < P; ++p) y[size_t(p * C + c)] = x[size_t(c * P + p)];
  return y;
}
inline std::vector<float> to_cthw(const std::vector<float>& y, const std::vector<int64_t>& s) {
  std::vector<float> x(y.size());
  const int64_t C = s[0], P = s[1] * s[2] * s[3];
  for (int64_t c = 0; c < C; ++c)
    for (int64_t p = 0; p < P; ++p) x[size_t(c * P + p)] = y[size_t(p * C + c)];
  return x;
}

// The C++ forward pass of a golden forward file's input.
struct Forward {
  std::vector<float> velocity;  // [C, T, H, W] as the official code lays it out
  std::vector<Tensor> blocks;   // per block (1, N, D), frame-major
};

// `dit` on the golden's `x` at its timestep `t` with its `context` zero-padded to text_len rows
// (as the official model pads it), dense attention, the residual stream captured after every
// block. Throws std::runtime_error when the golden's channels or context width do not match.
inline Forward run_forward(DiTModel& dit, const io::SafetensorsFile& g) {
  const DiTConfig& c = dit.config();
  const std::vector<int64_t> xs = g.tensor("x").shape;  // [C, T, H, W]
  const int C = int(xs[0]), T = int(xs[1]), H = int(xs[2]), W = int(xs[3]);
  const std::vector<int64_t> cs = g.tensor("context").shape;
  if (C != c.in_channels || cs.size() != 2 || cs[1] != c.ctx_dim || cs[0] > c.ctx_len)
    throw std::runtime_error("golden '" + g.path() + "': x or context does not fit the model (channels " +
                             std::to_string(C) + " vs " + std::to_string(c.in_channels) + ", context width " +
                             std::to_string(cs.back()) + " vs " + std::to_string(c.ctx_dim) + ")");
  const std::vector<float> xt = to_thwc(g.to_float("x"), xs);
  std::vector<float> vt(xt.size());
  const std::vector<float> ctx = g.to_float("context");
  Tensor raw({1, int64_t(c.ctx_len), int64_t(c.ctx_dim)});
  raw.fill(0.0f);
  std::copy(ctx.begin(), ctx.end(), raw.data());
  const double timestep = double(g.to_float("t").at(0));  // an integer below 1000, exact in float
  Forward f;
  attn::DenseBackend dense;
  dit.set_capture(&f.blocks);
  dit.forward(xt.data(), LatentShape{T, H, W}, 1, &timestep, raw, dense, {}, vt.data());
  dit.set_capture(nullptr);
  f.velocity = to_cthw(vt, xs);
  return f;
}

}  // namespace ditgen::wan_golden
