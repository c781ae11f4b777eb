#pragma once
// One generation run: model + attention backend + flow-matching sampler + guidance + decoder.
// Shared by `ditgen generate`, `ditgen compare` and the tests.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "attention/backend.h"
#include "dit/model.h"
#include "io/video.h"
#include "io/weights_h5.h"

namespace ditgen::app {

struct GenerateOptions {
  VideoShape shape;
  std::vector<int> labels;  // ctx_len labels (labels model)
  int steps = 20;
  double cfg = 4.0;
  uint64_t seed = 0;
  std::string solver = "unipc";
  bool progress = false;    // progress bar on stderr
  int64_t memory_limit_bytes = 0;  // 0: the memory available now
};

struct GenerateResult {
  std::vector<float> video;  // (T, H, W, C) sampler output
  io::Frames frames;         // decoded 8-bit frames
  double seconds = 0, seconds_per_step = 0;
  ForwardProfile profile;
  int64_t tokens = 0;
  std::string attn_spec;
  std::string attn_report = "{}";
};

// Loads a model: an HDF5 path, or "builtin:tiny" (random weights, for tests and smoke runs).
// Weight files are read through load_weights_isolated.
std::unique_ptr<DiTModel> load_model(const std::string& spec);

// io::load_weights (read_data) or io::inspect_weights in a child process whose result comes
// back through a pipe: libhdf5 1.10 crashes on some malformed files (tests/fuzz, see
// docs/robustness.md), and a crash there becomes a std::runtime_error naming the file here.
// Errors the loader reports are rethrown with their message. Peak memory stays about one copy
// of the weights (the child frees each tensor once sent).
io::LoadedModel load_weights_isolated(const std::string& path, bool read_data = true);

// Throws std::invalid_argument for bad options (labels, shape, steps, cfg), std::runtime_error
// for failures (memory, numerical guard with step and layer, interruption as io::Interrupted).
GenerateResult generate(DiTModel& model, attn::AttentionBackend& backend, const GenerateOptions& opt);

// Peak resident set size of this process so far, MiB.
double peak_rss_mb();
// Memory available to a new allocation now, bytes (MemAvailable).
int64_t available_memory_bytes();

}  // namespace ditgen::app
