#pragma once
// One generation run: conditioner -> DiT under an attention backend inside the flow-matching
// sampler with classifier-free guidance -> decoder. Shared by `ditgen generate`, `compare`,
// `attnmap`, `calibrate` and the tests.
#include <cstdint>
#include <string>
#include <vector>

#include "attention/backend.h"
#include "core/frames.h"
#include "pipeline/family.h"
#include "sampler/step_cache.h"

namespace ditgen::pipeline {

struct GenerateOptions {
  LatentShape shape;        // the sampler's space (Model::geometry of the video asked for)
  Condition condition;      // what the conditioner reads (labels, text states)
  std::vector<float> noise; // (T, H, W, C) the start of sampling; empty: seeded noise
  int steps = 20;
  double cfg = 4.0;
  uint64_t seed = 0;
  std::string solver = "unipc";
  sampler::CacheSpec cache;        // step caching (off by default); never skips the backend's pinned steps
  RopeExtrapolation rope;          // temporal RoPE extrapolation (RIFLEx); off by default
  bool progress = false;           // progress bar on stderr
  int64_t memory_limit_bytes = 0;  // 0: the memory available now
};

struct GenerateResult {
  std::vector<float> video;  // (T, H, W, C) sampler output (the latent)
  Frames frames;             // decoded 8-bit frames (none when the model has no decoder)
  double seconds = 0, seconds_per_step = 0;  // sampling
  double decode_seconds = 0;                  // the decoder
  ForwardProfile profile;
  int64_t tokens = 0;
  std::string attn_spec;
  std::string attn_report = "{}";
  std::string cache_spec = "off";
  std::vector<int> skipped_steps;  // steps whose model evaluation the step cache skipped
  int model_steps = 0;             // steps that ran the model
};

// Throws std::invalid_argument for bad options (condition, shape, steps, cfg), std::runtime_error
// for failures (memory, numerical guard with step and layer, interruption as io::Interrupted).
GenerateResult generate(Model& model, attn::AttentionBackend& backend, const GenerateOptions& opt);

}  // namespace ditgen::pipeline
