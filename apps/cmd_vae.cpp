// ditgen vae: a Wan2.1 VAE on its own (decode saved latents, encode a video, the round trip).
#include <cmath>
#include <iostream>
#include <memory>
#include <optional>

#include "apps/cli_common.h"
#include "apps/commands.h"
#include "io/atomic_file.h"
#include "io/video.h"
#include "pipeline/memory.h"
#include "pipeline/options.h"
#include "pipeline/vae_run.h"
#include "pipeline/wan.h"

namespace ditgen::app {
namespace {

struct VaeArgs {
  pipeline::VaeRunOptions run;
  std::string dtype = "auto";
  std::string out, frames_dir, sheet, json, latents_out;
  double fps = 16;
  std::optional<int> tile, tile_overlap;
  int threads = 0;
  bool overwrite = false;
};

void run_vae(VaeArgs a) {
  set_threads(a.threads);
  a.run.dtype = parse_dtype_flag(a.dtype);
  const bool decodes = !a.run.decode.empty() || a.run.roundtrip;
  try {
    a.run.tiling = pipeline::vae_tiling_from_pixels(a.tile, a.tile_overlap);
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  }
  if (a.run.tiling.on() && !decodes) throw UsageError("--vae-tile applies to decoding: give --decode FILE, or --roundtrip with --encode");
  if (a.run.roundtrip && a.run.encode.empty()) throw UsageError("--roundtrip needs --encode VIDEO");
  if (!decodes && (!a.out.empty() || !a.frames_dir.empty() || !a.sheet.empty()))
    throw UsageError("frames are written only when decoding: give --decode FILE, or --roundtrip with --encode");
  if (decodes && a.out.empty() && a.frames_dir.empty() && a.sheet.empty() && a.json.empty())
    throw UsageError("nothing to write: give --out, --frames-dir, --sheet or --json");
  if (!a.run.encode.empty() && !a.run.roundtrip && a.latents_out.empty())
    throw UsageError("--encode writes its latents with --latents-out FILE.safetensors (or decodes them with --roundtrip)");
  if (!a.latents_out.empty()) {
    if (a.run.encode.empty()) throw UsageError("--latents-out writes what --encode produces");
    check_output_path(a.latents_out, a.overwrite, false);
    if (io::extension(a.latents_out) != ".safetensors")
      throw UsageError("--latents-out '" + a.latents_out + "' must end in .safetensors");
  }
  if (!a.out.empty()) check_output_path(a.out, a.overwrite, true);
  if (!a.sheet.empty()) {
    check_output_path(a.sheet, a.overwrite, true);
    if (io::extension(a.sheet) != ".png") throw UsageError("--sheet '" + a.sheet + "' must end in .png");
  }
  if (!a.json.empty()) check_output_path(a.json, a.overwrite, false);
  if (!(a.fps > 0 && a.fps <= 1000)) throw UsageError("--fps " + std::to_string(a.fps) + " is out of range: expected (0, 1000]");
  io::install_interrupt_handlers();
  pipeline::VaeRunResult r;
  try {
    r = pipeline::run_vae(a.run);
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  }
  if (!a.frames_dir.empty()) {
    try {
      io::check_frames_dir(a.frames_dir, r.frames.frames, a.overwrite);
    } catch (const std::invalid_argument& e) {
      throw UsageError(e.what());
    }
  }
  io::OutputBatch batch;
  if (!a.out.empty()) io::write_output(a.out, r.frames, a.fps, a.overwrite, &batch);
  if (!a.frames_dir.empty()) io::write_frames_dir(a.frames_dir, r.frames, a.overwrite, &batch);
  if (!a.sheet.empty()) io::write_contact_sheet(a.sheet, r.frames, a.overwrite, &batch);
  if (!a.latents_out.empty())
    pipeline::write_latents_file(a.latents_out, r.latents, r.shape, r.channels, a.overwrite, &batch);
  if (!a.json.empty()) {
    nlohmann::json j;
    j["model"] = a.run.model;
    j["dtype"] = r.dtype;
    j["weights_mb"] = r.weights_mb;
    j["latent"] = {r.channels, r.shape.frames, r.shape.height, r.shape.width};
    j["frames"] = r.frames.frames;
    j["height"] = r.frames.height;
    j["width"] = r.frames.width;
    j["encode_seconds"] = r.encode_seconds;
    j["decode_seconds"] = r.decode_seconds;
    j["vae_tile"] = a.run.tiling.on() ? nlohmann::json{{"tile_px", a.run.tiling.size * 8}, {"overlap_px", a.run.tiling.overlap * 8}}
                                      : nlohmann::json(nullptr);
    if (r.roundtrip_psnr_db) j["roundtrip_psnr_db"] = std::isfinite(*r.roundtrip_psnr_db) ? *r.roundtrip_psnr_db : 999.0;
    j["peak_rss_mb"] = pipeline::peak_rss_mb();
    j["threads"] = a.threads;
    write_json(a.json, j, a.overwrite, &batch);
  }
  batch.commit();
  if (decodes)
    std::cerr << "decoded latent " << r.shape.frames << "x" << r.shape.height << "x" << r.shape.width << " into "
              << r.frames.frames << " frames of " << r.frames.width << "x" << r.frames.height << " in " << r.decode_seconds
              << " s\n";
  if (!a.run.encode.empty())
    std::cerr << "encoded " << a.run.encode << " into latent " << r.shape.frames << "x" << r.shape.height << "x"
              << r.shape.width << " in " << r.encode_seconds << " s\n";
  if (r.roundtrip_psnr_db) std::cerr << "round trip PSNR " << *r.roundtrip_psnr_db << " dB\n";
}

const Registrar reg("vae", "Decode saved Wan2.1 latents into frames, or encode a video (round trip with --roundtrip)",
                    [](CLI::App& sub) {
  auto a = std::make_shared<VaeArgs>();
  sub.add_option("--model", a->run.model, "A Wan2.1 model folder (Wan2.1_VAE.safetensors) or the VAE's .safetensors file")
      ->required();
  sub.add_option("--decode", a->run.decode, "Latents to decode: .safetensors, tensor latents [16, frames, height, width]");
  sub.add_option("--encode", a->run.encode, "Video (.mp4, .mkv), PNG or folder of PNG frames to encode: 1 + 4k frames, sides multiples of 8");
  sub.add_flag("--roundtrip", a->run.roundtrip, "With --encode: decode the latents again and report PSNR against the input");
  sub.add_option("--latents-out", a->latents_out, "With --encode: write the latents (.safetensors, tensor latents)");
  sub.add_option("--dtype", a->dtype, "Convolution weights and inputs: auto (bf16 where the CPU has AVX-512 BF16), bf16, float32")
      ->capture_default_str();
  sub.add_option("--vae-tile", a->tile, "Decode in tiles of at most PX x PX pixels (a multiple of 8), blended across their overlap");
  sub.add_option("--vae-tile-overlap", a->tile_overlap, "With --vae-tile: pixels neighbouring tiles share and blend (multiple of 8; default 64)");
  sub.add_option("--out", a->out, "Decoded video: .mp4 (H.264), .mkv (lossless FFV1) or .png");
  sub.add_option("--frames-dir", a->frames_dir, "Also write every decoded frame as PNG into this directory");
  sub.add_option("--sheet", a->sheet, "Also write a contact sheet PNG");
  sub.add_option("--json", a->json, "Write a machine-readable summary (times, peak RSS, round-trip PSNR)");
  sub.add_option("--fps", a->fps, "Frames per second of the video")->capture_default_str();
  sub.add_option("--threads", a->threads, "OpenMP threads (0: all)");
  sub.add_flag("--overwrite", a->overwrite, "Replace existing output files");
  sub.callback([a] { run_vae(*a); });
});

}  // namespace
}  // namespace ditgen::app
