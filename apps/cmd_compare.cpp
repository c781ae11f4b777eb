// ditgen compare: the dense baseline and each sparse configuration with identical noise,
// labels and steps; quality (PSNR, SSIM, digit score) and speed against dense.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <limits>
#include <memory>

#include "apps/cli_common.h"
#include "apps/commands.h"
#include "attention/sparse/recall_probe.h"
#include "attention/spec.h"
#include "eval/metrics.h"
#include "eval/score_digits.h"
#include "io/atomic_file.h"
#include "io/video.h"

namespace fs = std::filesystem;

namespace ditgen::app {
namespace {

struct CompareArgs {
  GenerationFlags gen;
  std::vector<std::string> attn;
  std::vector<std::string> cache;  // empty: off only
  std::string baseline = "dense";
  std::string out_dir, json;
  std::string classifier;  // empty: the shipped one, where it is found
  int recall_rows = 4;
  double fps = 8;
  bool overwrite = false;
};

struct Measured {
  std::string attn, cache = "off";
  pipeline::GenerateResult result;
  std::vector<double> recall;
  double recall_mean = 1;
  double seconds = 0, attention_seconds = 0;  // probe time removed
  double digit_fraction = std::numeric_limits<double>::quiet_NaN();
};

Measured run_one(pipeline::Model& model, const std::string& spec, const attn::KernelOptions& kopt,
                 const pipeline::GenerateOptions& opt, int recall_rows) {
  std::unique_ptr<attn::AttentionBackend> backend;
  try {
    backend = attn::make_backend(spec, kopt);
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  }
  attn::RecallProbe probe(*backend, recall_rows, opt.seed);
  Measured m;
  m.result = generate(model, probe, opt);
  m.attn = m.result.attn_spec;
  m.cache = m.result.cache_spec;
  m.recall = probe.layer_recall();
  m.recall_mean = probe.mean_recall();
  m.seconds = m.result.seconds - probe.probe_seconds();
  m.attention_seconds = m.result.profile.attention_seconds - probe.probe_seconds();
  return m;
}

nlohmann::json number(double v) {
  if (std::isnan(v)) return nullptr;
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  return v;
}

// Side-by-side frames: dense | sparse | |difference| amplified 4x.
io::Frames side_by_side(const io::Frames& a, const io::Frames& b) {
  io::Frames s;
  s.frames = a.frames;
  s.height = a.height;
  s.width = 3 * a.width + 4;
  s.channels = a.channels;
  s.data.assign(size_t(s.frames) * s.height * s.width * s.channels, 128);
  for (int t = 0; t < a.frames; ++t)
    for (int y = 0; y < a.height; ++y)
      for (int x = 0; x < a.width; ++x)
        for (int c = 0; c < a.channels; ++c) {
          const size_t src = ((size_t(t) * a.height + y) * a.width + x) * a.channels + c;
          auto dst = [&](int panel) {
            return ((size_t(t) * s.height + y) * s.width + size_t(panel) * (a.width + 2) + x) * s.channels + c;
          };
          s.data[dst(0)] = a.data[src];
          s.data[dst(1)] = b.data[src];
          s.data[dst(2)] = uint8_t(std::min(255, 4 * std::abs(int(a.data[src]) - int(b.data[src]))));
        }
  return s;
}

void run_compare(const CompareArgs& a) {
  set_threads(a.gen.threads);
  if (a.attn.empty()) throw UsageError("give at least one --attn SPEC to compare against the baseline");
  if (!a.json.empty()) check_output_path(a.json, a.overwrite, false);
  if (!a.out_dir.empty()) {
    std::error_code ec;
    if (!fs::is_directory(a.out_dir, ec)) throw UsageError("--out-dir '" + a.out_dir + "' does not exist");
    if (!io::directory_writable(a.out_dir)) throw UsageError("--out-dir '" + a.out_dir + "' is not writable");
  }
  if (a.recall_rows < 0 || a.recall_rows > 4096)
    throw UsageError("--recall-rows " + std::to_string(a.recall_rows) + " is out of range: expected 0 to 4096");
  std::vector<sampler::CacheSpec> caches;
  for (const auto& c : a.cache) caches.push_back(parse_cache_flag(c));
  if (caches.empty()) caches.emplace_back();
  const attn::KernelOptions kopt = a.gen.kernel_options();
  try {
    for (const auto& s : a.attn) attn::make_backend(s, kopt);  // reject bad specs before any long run
    attn::make_backend(a.baseline, kopt);
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  }
  // Whether the digit score applies is read from the file's config alone, so that a
  // --classifier given with another model is refused before the (long) model load.
  const bool label_model = scores_digits(a.gen.model);
  if (!a.classifier.empty()) {
    find_classifier(a.classifier);
    if (!label_model)
      throw UsageError("--classifier '" + a.classifier + "' scores the digits model's videos; '" + a.gen.model +
                       "' is not a ten-class label model");
  }
  pipeline::Model model = a.gen.load_model();
  if (!model.decoder)
    throw UsageError("compare measures decoded frames, and '" + a.gen.model + "' has no decoder (" + model.no_decoder_reason + ")");
  pipeline::GenerateOptions opt = a.gen.options(model);
  io::install_interrupt_handlers();

  // The digit score: the digits model's task quality, with --classifier or the shipped
  // classifier; without the shipped one (an installed binary elsewhere) the JSON says null.
  eval::DigitClassifier clf;
  const std::optional<std::string> clf_path =
      !label_model ? std::nullopt : a.classifier.empty() ? find_shipped_classifier() : find_classifier(a.classifier);
  if (label_model && !clf_path)
    std::cerr << "digit score not measured: the shipped classifier (" << kShippedClassifier
              << ") is neither in the working directory nor next to the ditgen binary; pass --classifier\n";
  const bool digits = clf_path.has_value();
  if (digits) clf = eval::DigitClassifier::load(*clf_path);
  auto score = [&](Measured& m) {
    if (!digits) return;
    const auto& f = m.result.frames;
    m.digit_fraction = eval::score_frames(f.data.data(), f.frames, f.height, f.width, f.channels, opt.condition.labels[0],
                                          opt.condition.labels[1], clf).fraction;
  };

  std::cerr << "baseline: " << a.baseline << "\n";
  Measured base = run_one(model, a.baseline, kopt, opt, 0);
  score(base);
  const auto& bf = base.result.frames;
  nlohmann::json j;
  j["baseline"] = {{"attn", base.attn},
                   {"seconds", base.seconds},
                   {"attention_seconds", base.attention_seconds},
                   {"density", base.result.profile.mean_density()},
                   {"digit_score", number(base.digit_fraction)}};
  j["settings"] = {{"model", a.gen.model}, {"frames", opt.shape.frames}, {"height", opt.shape.height},
                   {"width", opt.shape.width}, {"steps", opt.steps},      {"cfg", opt.cfg},
                   {"seed", opt.seed},          {"labels", opt.condition.labels},    {"solver", opt.solver},
                   {"tokens", base.result.tokens}, {"recall_rows", a.recall_rows},
                   {"riflex", opt.rope.riflex_k ? nlohmann::json(opt.rope.riflex_k) : nlohmann::json(nullptr)}};
  j["classifier"] = clf_path ? nlohmann::json(*clf_path) : nlohmann::json(nullptr);
  j["runs"] = nlohmann::json::array();

  std::printf("%-48s %8s %8s %8s %7s %8s %8s %8s %8s %7s %7s\n", "attn", "PSNR", "PSNRf", "SSIM", "density", "seconds",
              "attn_s", "e2e_x", "attn_x", "recall", "digits");
  std::printf("%-48s %8s %8s %8s %7.3f %8.2f %8.2f %8.2f %8.2f %7.3f %7.3f\n", base.attn.c_str(), "inf", "inf", "1.0000",
              base.result.profile.mean_density(), base.seconds, base.attention_seconds, 1.0, 1.0, 1.0, base.digit_fraction);
  int index = 0;
  std::vector<std::pair<std::string, sampler::CacheSpec>> runs;
  for (const auto& spec : a.attn)
    for (const auto& cache : caches) runs.emplace_back(spec, cache);
  for (const auto& [spec, cache] : runs) {
    std::cerr << "run: " << spec << (cache.enabled() ? " with --cache " + cache.str() : "") << "\n";
    pipeline::GenerateOptions run_opt = opt;
    run_opt.cache = cache;
    Measured m = run_one(model, spec, kopt, run_opt, a.recall_rows);
    const std::string label = m.attn + (cache.enabled() ? " +" + m.cache : "");
    score(m);
    const eval::VideoQuality q = eval::compare_videos(base.result.video.data(), m.result.video.data(), opt.shape.frames,
                                                      opt.shape.height, opt.shape.width, model.config().in_channels);
    const double e2e = base.seconds / m.seconds, att = base.attention_seconds / m.attention_seconds;
    std::printf("%-48s %8.2f %8.2f %8.4f %7.3f %8.2f %8.2f %8.2f %8.2f %7.3f %7.3f\n", label.c_str(), q.psnr_db,
                q.psnr_float_db, q.ssim, m.result.profile.mean_density(), m.seconds, m.attention_seconds, e2e, att,
                m.recall_mean, m.digit_fraction);
    std::fflush(stdout);
    nlohmann::json r = {{"attn", m.attn},
                        {"cache", m.cache},
                        {"skipped_steps", m.result.skipped_steps},
                        {"model_steps", m.result.model_steps},
                        {"psnr_db", number(q.psnr_db)},
                        {"psnr_float_db", number(q.psnr_float_db)},
                        {"ssim", q.ssim},
                        {"density", m.result.profile.mean_density()},
                        {"seconds", m.seconds},
                        {"attention_seconds", m.attention_seconds},
                        {"speedup_e2e", e2e},
                        {"speedup_attention", att},
                        {"attention_recall", m.recall_mean},
                        {"attention_recall_per_layer", m.recall},
                        {"digit_score", number(m.digit_fraction)},
                        {"attn_report", nlohmann::json::parse(m.result.attn_report)}};
    if (!a.out_dir.empty()) {
      const std::string path = (fs::path(a.out_dir) / ("compare_" + std::to_string(index) + ".mp4")).string();
      io::write_output(path, side_by_side(bf, m.result.frames), a.fps, a.overwrite);
      r["side_by_side"] = path;
    }
    j["runs"].push_back(r);
    ++index;
  }
  if (!a.json.empty()) write_json(a.json, j, a.overwrite);
}

const Registrar reg("compare", "Compare sparse attention configurations against the dense baseline", [](CLI::App& sub) {
  auto a = std::make_shared<CompareArgs>();
  a->gen.add(sub);
  sub.add_option("--attn", a->attn, "Attention spec to compare (repeatable)")->required();
  sub.add_option("--cache", a->cache,
                 "Step-cache spec (repeatable): every --attn runs under each; the baseline never caches "
                 "(default: off)");
  sub.add_option("--baseline", a->baseline, "Baseline attention spec");
  sub.add_option("--out-dir", a->out_dir, "Write a side-by-side video (dense | sparse | 4x difference) per run here");
  sub.add_option("--json", a->json, "Write the results as JSON (schema in docs/compare.md)");
  sub.add_option("--classifier", a->classifier,
                 std::string("Digit classifier for the digit score (digits model only; default: the shipped ") +
                     kShippedClassifier + ")");
  sub.add_option("--recall-rows", a->recall_rows, "Query rows per head sampled per call for attention recall");
  sub.add_option("--fps", a->fps, "Frames per second of the side-by-side videos");
  sub.add_flag("--overwrite", a->overwrite, "Replace existing output files");
  sub.callback([a] { run_compare(*a); });
});

}  // namespace
}  // namespace ditgen::app
