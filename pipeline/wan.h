#pragma once
// Wan2.1 text-to-video as a model family: the DiT from the release's files (io/wan_dit.h),
// conditioned on text-encoder states (cond/text_states.h), in Wan's latent geometry (16
// channels, 1 + 4k frames to 1 + k latent frames, 8x smaller sides) with Wan's sampler defaults
// (UniPC, shift 5, 50 steps, guidance 5, integer timesteps, 81 frames at 480 x 832), decoded by
// the folder's VAE (io/wan_vae.h) where it has one. The text encoder comes in its own part.
#include <string>
#include <vector>

#include "io/atomic_file.h"
#include "pipeline/family.h"

namespace ditgen::pipeline {

// A folder, or a file ending in .safetensors: what load_model hands to load_wan_model.
bool is_wan_spec(const std::string& spec);

// Throws std::runtime_error naming the file and what is wrong, or that the weights need more
// memory than there is (with the estimate); std::invalid_argument for a dtype this CPU cannot run.
Model load_wan_model(const std::string& spec, const LoadOptions& options);

// --context: tensors "prompt" and (optional) "negative_prompt", each (tokens, width), float32,
// bfloat16 or float16, into c. Throws std::runtime_error naming the file and the tensor.
void read_context_file(const std::string& path, Condition& c);

// --noise: tensor "noise" [C, T, H, W] (the official layout) as the sampler's (T, H, W, C).
// Throws std::runtime_error naming the file, the shape found and the one expected.
std::vector<float> read_noise_file(const std::string& path, const LatentShape& shape, int channels);

// `ditgen vae --decode`: tensor "latents" [C, T, H, W] (float32, bf16 or float16) as (T, H, W, C).
// Throws std::runtime_error naming the file: no such tensor, not rank 4, a non-finite value.
std::vector<float> read_latents_file(const std::string& path, LatentShape& shape, int& channels);

// --latents-out: tensor "latents" [C, T, H, W] float32 from the sampler's (T, H, W, C),
// atomically (published with `batch`).
void write_latents_file(const std::string& path, const std::vector<float>& latents, const LatentShape& shape,
                        int channels, bool overwrite, io::OutputBatch* batch);

}  // namespace ditgen::pipeline
