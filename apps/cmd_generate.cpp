// ditgen generate: one video (or image) from a weight file.
#include <iostream>
#include <memory>
#include <optional>

#include "apps/cli_common.h"
#include "apps/commands.h"
#include "attention/spec.h"
#include "io/atomic_file.h"
#include "io/video.h"
#include "pipeline/family.h"
#include "pipeline/wan.h"

namespace ditgen::app {
namespace {

struct GenerateArgs {
  GenerationFlags gen;
  std::optional<std::string> attn;  // unset: the adapters' attention, else default_generate_attn
  std::string cache = kDefaultGenerateCache;
  std::string out, frames_dir, sheet, json, latents_out;
  double fps = 8;
  bool overwrite = false;
};

void run_generate(const GenerateArgs& a) {
  set_threads(a.gen.threads);
  if (a.out.empty() && a.latents_out.empty()) throw UsageError("nothing to write: give --out (frames) or --latents-out");
  if (!a.out.empty()) check_output_path(a.out, a.overwrite, true);
  if (!a.latents_out.empty()) {
    check_output_path(a.latents_out, a.overwrite, false);
    if (io::extension(a.latents_out) != ".safetensors")
      throw UsageError("--latents-out '" + a.latents_out + "' must end in .safetensors");
  }
  if (!a.sheet.empty()) {
    check_output_path(a.sheet, a.overwrite, true);
    if (io::extension(a.sheet) != ".png") throw UsageError("--sheet '" + a.sheet + "' must end in .png");
  }
  if (!a.json.empty()) check_output_path(a.json, a.overwrite, false);
  if (!(a.fps > 0 && a.fps <= 1000)) throw UsageError("--fps " + std::to_string(a.fps) + " is out of range: expected (0, 1000]");
  attn::KernelOptions kopt;
  std::unique_ptr<attn::AttentionBackend> backend;
  try {
    kopt.isa = attn::parse_isa(a.gen.isa);
    attn::resolve_isa(kopt.isa);  // refuse a path this CPU cannot run before any work
    std::string attn;
    if (a.attn) {
      attn = *a.attn;
    } else {
      const auto trained = a.gen.adapters().attention;
      attn = trained.value_or(default_generate_attn(kopt.isa));
      if (trained) std::cerr << "attention " << attn << ": the adapter's (give --attn to choose another)\n";
    }
    backend = attn::make_backend(attn, kopt);
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  }
  const sampler::CacheSpec cache = parse_cache_flag(a.cache);
  pipeline::Model model = a.gen.load_model();
  pipeline::GenerateOptions opt = a.gen.options(model);
  opt.cache = cache;
  if (!model.decoder && (!a.out.empty() || !a.frames_dir.empty() || !a.sheet.empty()))
    throw UsageError("'" + a.gen.model + "' has no decoder (" + model.no_decoder_reason +
                     "): frames cannot be written; write the latents with --latents-out");
  if (!a.frames_dir.empty()) {
    try {
      io::check_frames_dir(a.frames_dir, opt.shape.frames, a.overwrite);
    } catch (const std::invalid_argument& e) {
      throw UsageError(e.what());
    }
  }
  io::install_interrupt_handlers();
  pipeline::GenerateResult r;
  try {
    r = pipeline::generate(model, *backend, opt);
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  }
  // Every output is written before any is published: a failure in the last leaves none.
  io::OutputBatch batch;
  if (!a.out.empty()) io::write_output(a.out, r.frames, a.fps, a.overwrite, &batch);
  if (!a.latents_out.empty())
    pipeline::write_latents_file(a.latents_out, r.video, opt.shape, model.config().in_channels, a.overwrite, &batch);
  if (!a.frames_dir.empty()) io::write_frames_dir(a.frames_dir, r.frames, a.overwrite, &batch);
  if (!a.sheet.empty()) io::write_contact_sheet(a.sheet, r.frames, a.overwrite, &batch);
  if (!a.json.empty()) {
    nlohmann::json j;
    j["attn"] = r.attn_spec;
    j["seconds"] = r.seconds;
    j["seconds_per_step"] = r.seconds_per_step;
    j["decode_seconds"] = r.decode_seconds;
    j["attention_seconds"] = r.profile.attention_seconds;
    j["linear_seconds"] = r.profile.linear_seconds;
    j["other_seconds"] = r.profile.other_seconds;
    j["tokens"] = r.tokens;
    j["density"] = r.profile.mean_density();
    std::vector<double> per_layer;
    for (size_t l = 0; l < r.profile.layer_calls.size(); ++l)
      per_layer.push_back(r.profile.layer_calls[l] ? r.profile.layer_density_sum[l] / r.profile.layer_calls[l] : 1.0);
    j["layer_density"] = per_layer;
    j["peak_rss_mb"] = pipeline::peak_rss_mb();
    j["family"] = model.family;
    j["frames"] = model.geometry.video_frames(opt.shape.frames);
    j["height"] = opt.shape.height * model.geometry.space;
    j["width"] = opt.shape.width * model.geometry.space;
    j["latent"] = {opt.shape.frames, opt.shape.height, opt.shape.width};
    j["dtype"] = model.dtype;
    j["weights_mb"] = double(model.dit->weight_bytes()) / (1 << 20);
    j["steps"] = opt.steps;
    j["cfg"] = opt.cfg;
    j["seed"] = opt.seed;
    j["solver"] = opt.solver;
    j["riflex"] = opt.rope.riflex_k ? nlohmann::json(opt.rope.riflex_k) : nlohmann::json(nullptr);
    if (model.family == "labels") j["labels"] = opt.condition.labels;
    if (!a.gen.context.empty()) j["context"] = a.gen.context;
    if (a.gen.encoded) j["prompt"] = prompt_json(*a.gen.encoded);
    if (!a.gen.noise.empty()) j["noise"] = a.gen.noise;
    j["model"] = a.gen.model;
    j["threads"] = a.gen.threads;
    j["attn_report"] = nlohmann::json::parse(r.attn_report);
    j["cache"] = r.cache_spec;
    j["skipped_steps"] = r.skipped_steps;
    j["model_steps"] = r.model_steps;
    write_json(a.json, j, a.overwrite, &batch);
  }
  batch.commit();
  std::cerr << "wrote " << (a.out.empty() ? a.latents_out : a.out) << " (" << model.geometry.video_frames(opt.shape.frames)
            << " frames, " << opt.shape.width * model.geometry.space << "x" << opt.shape.height * model.geometry.space
            << ") in " << r.seconds << " s; attention " << r.profile.attention_seconds << " s, density "
            << r.profile.mean_density();
  if (!r.skipped_steps.empty()) std::cerr << "; " << r.skipped_steps.size() << " of " << opt.steps << " steps reused the cache";
  std::cerr << "\n";
}

const Registrar reg("generate", "Generate a video (or an image with --frames 1) from a weight file", [](CLI::App& sub) {
  auto a = std::make_shared<GenerateArgs>();
  a->gen.add(sub);
  sub.add_option("--attn", a->attn,
                 "Attention method spec NAME[:key=value,...] (see docs/attention.md); 'dense' for exact attention "
                 "(default: the attention a --lora adapter was trained for, if one names it; else " +
                     std::string(kDefaultGenerateAttn) + ", with isa=avx512bf16 where --isa is auto and the CPU has it)");
  sub.add_option("--cache", a->cache,
                 "Step caching: easy[:thresh=X,warmup=N|F,max_skip=N,reuse=delta|output|extrapolate] reuses the "
                 "model's last output on steps predicted to change little (docs/caching.md); 'off' runs every step")
      ->capture_default_str();
  sub.add_option("--out", a->out, "Output: .mp4 (H.264), .mkv (lossless FFV1) or .png");
  sub.add_option("--latents-out", a->latents_out,
                 "Also (or only) write the final latents: .safetensors, tensor latents [channels, frames, height, width]");
  sub.add_option("--frames-dir", a->frames_dir, "Also write every frame as PNG into this directory");
  sub.add_option("--sheet", a->sheet, "Also write a contact sheet PNG (all frames in a grid)");
  sub.add_option("--json", a->json, "Write a machine-readable run summary");
  sub.add_option("--fps", a->fps, "Frames per second of the video");
  sub.add_flag("--overwrite", a->overwrite, "Replace existing output files");
  sub.callback([a] { run_generate(*a); });
});

}  // namespace
}  // namespace ditgen::app
