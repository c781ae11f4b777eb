#pragma once
// Bodies of the libFuzzer harnesses, shared with the regression test (tests/robustness_test.cpp)
// so that every input kept under tests/fuzz/regressions/ is replayed by the ordinary test suite.
//
// Each body feeds one input to a parser of outside input and, when the parser accepts it, uses
// the result the way the engine would. The contract under test: bad input ends in the
// documented exception (std::runtime_error / std::invalid_argument with a message), never a
// crash, a hang, undefined behaviour or another exception type. A body returns "" when the
// contract held and a description of the broken invariant otherwise; unexpected exception
// types propagate (libFuzzer reports them as a crash, GoogleTest as a failure).
#include <omp.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "attention/backend.h"
#include "attention/methods/paro.h"
#include "attention/methods/sta.h"
#include "attention/spec.h"
#include "dit/model.h"
#include "pipeline/family.h"
#include "io/weights_h5.h"

namespace ditgen::fuzz {

// Fixed pseudo-random q, k, v for running a backend on a small problem.
inline std::vector<float> fixed_values(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// Runs `b` as the model would on a tp x hp x wp grid (batch 2 as under guidance, 2 heads,
// head dim 8, 2 layers, 2 steps). Returns "" if every output element is finite.
// std::invalid_argument from the backend (e.g. a calibration for another grid) is accepted.
inline std::string run_backend(attn::AttentionBackend& b, int tp, int hp, int wp, int heads = 2) {
  const int batch = 2, dh = 8;
  TokenLayout layout;
  try {
    layout = b.layout(tp, hp, wp);
  } catch (const std::invalid_argument&) {
    return "";
  }
  if (layout.tokens() != int64_t(tp) * hp * wp) return "backend layout has " + std::to_string(layout.tokens()) + " tokens";
  const int64_t n = layout.tokens();
  const size_t count = size_t(batch) * heads * size_t(n) * dh;
  const std::vector<float> q = fixed_values(count, 1), k = fixed_values(count, 2), v = fixed_values(count, 3);
  std::vector<float> out(count, std::nanf(""));
  attn::AttentionInputs in;
  in.q = q.data(), in.k = k.data(), in.v = v.data();
  in.batch = batch, in.heads = heads, in.tokens = n, in.head_dim = dh, in.layout = &layout;
  for (int step = 0; step < 2; ++step)
    for (int layer = 0; layer < 2; ++layer) {
      attn::AttentionContext ctx;
      ctx.step = step, ctx.num_steps = 2, ctx.layer = layer, ctx.num_layers = 2;
      attn::AttendReport report;
      try {
        report = b.attend(in, out.data(), ctx);
      } catch (const std::invalid_argument&) {
        return "";
      }
      for (size_t i = 0; i < count; ++i)
        if (!std::isfinite(out[i]))
          return "backend '" + b.spec() + "' wrote a non-finite value at " + std::to_string(i) + " (step " +
                 std::to_string(step) + ", layer " + std::to_string(layer) + ")";
      // Pairs computed relative to N x N: above 1 only where a method adds tokens (window
      // summaries), never negative or non-finite.
      const double d = report.density;
      if (!(d >= 0 && d <= 4)) return "backend '" + b.spec() + "' reports density " + std::to_string(d);
    }
  return "";
}

// --attn SPEC: parse_spec, make_backend, the spec round trip, and a small run.
inline std::string attn_spec_one(const uint8_t* data, size_t size) {
  if (size > 256) return "";
  const std::string text(reinterpret_cast<const char*>(data), size);
  // Paths would let the fuzzer read arbitrary files (/dev/stdin blocks): the calibration file
  // reader has its own harness (paro_calib_one).
  if (text.find('/') != std::string::npos) return "";
  try {
    attn::parse_spec(text);
  } catch (const std::invalid_argument&) {
  }
  std::unique_ptr<attn::AttentionBackend> b;
  try {
    b = attn::make_backend(text);
  } catch (const std::invalid_argument&) {
    return "";
  }
  // spec() spells every key out and must name the same backend again (a fixed point).
  const std::string full = b->spec();
  std::unique_ptr<attn::AttentionBackend> b2;
  try {
    b2 = attn::make_backend(full);
  } catch (const std::invalid_argument& e) {
    return "spec '" + full + "' of '" + text + "' does not parse: " + e.what();
  }
  if (b2->spec() != full) return "spec '" + full + "' re-parses as '" + b2->spec() + "'";
  for (const auto& g : {std::array<int, 3>{1, 4, 4}, std::array<int, 3>{3, 4, 6}}) {
    const std::string r = run_backend(*b, g[0], g[1], g[2]);
    if (!r.empty()) return r;
  }
  return "";
}

// An STA calibration file (the same bytes): StaCalibration::read, then `window:calib` on its
// grid and on another (windows are in tiles, so any grid runs).
inline std::string sta_calib_file(const std::string& path) {
  attn::StaCalibration c;
  try {
    c = attn::StaCalibration::read(path);
  } catch (const std::runtime_error&) {
    return "";
  }
  std::unique_ptr<attn::AttentionBackend> b;
  try {
    b = attn::make_backend("window:calib=" + path + ",dense_steps=0");
  } catch (const std::invalid_argument&) {
    return "";
  }
  if (int64_t(c.tp) * c.hp * c.wp > 512) return "";
  for (const auto& g : {std::array<int, 3>{c.tp, c.hp, c.wp}, std::array<int, 3>{3, 4, 6}}) {
    const std::string r = run_backend(*b, g[0], g[1], g[2], c.heads);
    if (!r.empty()) return r;
  }
  return "";
}

// A calibration file (JSON) of either kind: ParoCalibration::read, then the backend on its
// grid; then the STA reading of the same bytes (sta_calib_file).
inline std::string paro_calib_one(const uint8_t* data, size_t size) {
  if (size > 65536) return "";
  static const std::string path = (std::filesystem::temp_directory_path() /
                                   ("ditgen-fuzz-paro-" + std::to_string(::getpid()) + ".json")).string();
  {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(data), std::streamsize(size));
  }
  if (const std::string r = sta_calib_file(path); !r.empty()) return r;
  attn::ParoCalibration c;
  try {
    c = attn::ParoCalibration::read(path);
  } catch (const std::runtime_error&) {
    return "";
  }
  std::unique_ptr<attn::AttentionBackend> b;
  try {
    b = attn::make_backend("paro:calib=" + path);
  } catch (const std::invalid_argument&) {
    return "";
  }
  // Small grids only (a valid file may describe a large one); heads 2 as the calibration
  // usually says, and 3 to check the mismatch is refused cleanly.
  if (int64_t(c.tp) * c.hp * c.wp > 512) return "";
  for (int heads : {2, 3}) {
    const std::string r = run_backend(*b, c.tp, c.hp, c.wp, heads);
    if (!r.empty()) return r;
  }
  return "";
}

// An HDF5 weight file image: load_weights_from_memory, the loaded tensors against the
// config's table, and (for small models) one forward pass.
inline std::string weights_one(const uint8_t* data, size_t size) {
  io::LoadedModel m;
  try {
    m = io::load_weights_from_memory(data, size);
  } catch (const std::runtime_error&) {
    return "";
  }
  try {
    m.config.validate();
  } catch (const std::invalid_argument& e) {
    return std::string("loader accepted an invalid config: ") + e.what();
  }
  int64_t params = 0;
  for (auto& e : m.weights.tensor_table(m.config)) {
    if (e.tensor->shape() != e.shape)
      return "tensor '" + e.name + "' loaded as " + shape_string(e.tensor->shape()) + ", expected " + shape_string(e.shape);
    for (int64_t i = 0; i < e.tensor->size(); ++i)
      if (!std::isfinite((*e.tensor)[i])) return "tensor '" + e.name + "' loaded with a non-finite value";
    params += e.tensor->size();
  }
  const DiTConfig& c = m.config;
  if (params > 200000 || c.num_classes == 0) return "";
  LatentShape shape;
  shape.frames = c.patch_t;
  shape.height = 2 * c.patch_h;
  shape.width = 2 * c.patch_w;
  if (c.tokens(shape) * int64_t(c.dim) > 1 << 16 || int64_t(c.ctx_len) * c.ctx_dim > 1 << 16) return "";
  pipeline::Model parts = pipeline::assemble_model(c, std::move(m.weights));
  DiTModel& model = *parts.dit;
  attn::DenseBackend dense;
  const int64_t n = int64_t(shape.frames) * shape.height * shape.width * c.in_channels;
  std::vector<float> x = fixed_values(size_t(n), 4);
  std::vector<float> v(static_cast<size_t>(n));
  const std::vector<int> labels(size_t(c.ctx_len), 0);
  const Tensor ctx = parts.conditioner->context(Condition::of_labels(labels), false);
  const double t = 500.0;
  attn::AttentionContext actx;
  try {
    model.forward(x.data(), shape, 1, &t, ctx, dense, actx, v.data(), nullptr);
  } catch (const NumericalError&) {
    // Finite weights may still overflow: the numerical guard's case. (A non-finite value that
    // first appears in the head is caught by the sampler's per-step check in the pipeline.)
  }
  return "";
}

}  // namespace ditgen::fuzz
