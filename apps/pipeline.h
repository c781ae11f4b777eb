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

namespace ditgen::app {

struct GenerateOptions {
  VideoShape shape;
  std::vector<int> labels;  // ctx_len labels (labels model)
  std::string context_file; // raw context (L, E) for raw-context models
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
std::unique_ptr<DiTModel> load_model(const std::string& spec);

// Throws std::invalid_argument for bad options (labels, shape, steps, cfg), std::runtime_error
// for failures (memory, numerical guard with step and layer, interruption as io::Interrupted).
GenerateResult generate(DiTModel& model, attn::AttentionBackend& backend, const GenerateOptions& opt);

// Peak resident set size of this process so far, MiB.
double peak_rss_mb();
// Memory available to a new allocation now, bytes (MemAvailable).
int64_t available_memory_bytes();

}  // namespace ditgen::app
