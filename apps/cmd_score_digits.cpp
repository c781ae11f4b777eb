// ditgen score-digits: the fraction of a generated video's frames whose two digits the
// shipped classifier reads as the requested labels (frames where the digits overlap are
// counted apart). See eval/score_digits.h for how digits are found.
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "apps/cli_common.h"
#include "apps/commands.h"
#include "eval/score_digits.h"
#include "eval/score_digits_json.h"

namespace ditgen::app {
namespace {

namespace fs = std::filesystem;

struct ScoreDigitsArgs {
  std::string video, labels, classifier, json;
  int threshold = eval::ScoreOptions{}.threshold;
  double digit_scale = eval::ScoreOptions{}.digit_scale;
  double min_separation = eval::ScoreOptions{}.min_separation_cells;
  bool per_frame = false, overwrite = false;
};

}  // namespace

// "a,b" with a and b single digits 0-9 (declared in cli_common.h for the fuzz harness).
std::array<int, 2> parse_labels(const std::string& text) {
  const std::string bad = "--labels '" + text + "': expected two digits 0-9 separated by a comma, for example 3,7";
  const size_t comma = text.find(',');
  if (comma == std::string::npos || text.find(',', comma + 1) != std::string::npos) throw UsageError(bad);
  std::array<int, 2> out{};
  const std::string parts[2] = {text.substr(0, comma), text.substr(comma + 1)};
  for (int i = 0; i < 2; ++i) {
    const std::string& p = parts[i];
    if (p.size() != 1 || p[0] < '0' || p[0] > '9') throw UsageError(bad);
    out[i] = p[0] - '0';
  }
  return out;
}

namespace {

void run_score_digits(const ScoreDigitsArgs& a) {
  const std::array<int, 2> labels = parse_labels(a.labels);
  std::error_code ec;
  if (!fs::exists(a.video, ec)) throw UsageError("video '" + a.video + "' does not exist");
  if (a.threshold < 1 || a.threshold > 254) throw UsageError("--threshold must be in 1..254");
  if (!(a.digit_scale >= 0.25 && a.digit_scale <= 16)) throw UsageError("--digit-scale must be in 0.25..16");
  if (!a.json.empty()) check_output_path(a.json, a.overwrite, false);
  const std::string clf_path = find_classifier(a.classifier);

  const eval::DigitClassifier clf = eval::DigitClassifier::load(clf_path);
  const std::vector<cv::Mat> frames = eval::read_frames_gray(a.video);
  eval::ScoreOptions o;
  o.threshold = a.threshold;
  o.digit_scale = a.digit_scale;
  o.min_separation_cells = a.min_separation;
  const eval::DigitScore s = eval::score_frames(frames, labels[0], labels[1], clf, o);

  if (a.per_frame) {
    for (const auto& f : s.per_frame) {
      std::cout << "frame " << std::setw(4) << f.frame << "  " << std::left << std::setw(11) << f.status << std::right;
      for (int p : f.predicted) std::cout << " " << p;
      std::cout << (f.scored ? (f.correct ? "  correct" : "  wrong") : "  (not scored)") << "\n";
    }
  }
  std::ostringstream frac;
  if (std::isnan(s.fraction)) {
    frac << "n/a (no frame scored)";
  } else {
    frac << std::fixed << std::setprecision(4) << s.fraction;
  }
  std::cout << "video: " << a.video << "\nlabels: " << labels[0] << "," << labels[1] << "\nframes: " << s.frames
            << "\nscored_frames: " << s.scored_frames << "\ncorrect_frames: " << s.correct_frames
            << "\nfraction: " << frac.str() << "\noverlap_frames: " << s.overlap_frames << "\n";
  if (!a.json.empty()) {
    nlohmann::json j = eval::to_json(s);
    j["video"] = a.video;
    j["classifier"] = clf_path;
    write_json(a.json, j, a.overwrite);
  }
}

const Registrar reg(
    "score-digits",
    "Fraction of a video's frames whose two digits the shipped classifier reads as the requested labels",
    [](CLI::App& sub) {
      auto a = std::make_shared<ScoreDigitsArgs>();
      sub.add_option("--video", a->video, "Video (.mp4/.mkv), PNG (frame or contact sheet) or directory of PNG frames")
          ->required();
      sub.add_option("--labels", a->labels, "The two requested digits, for example 3,7 (order does not matter)")
          ->required();
      sub.add_option("--classifier", a->classifier,
                     std::string("Digit classifier (default: the shipped ") + kShippedClassifier + ")");
      sub.add_option("--json", a->json, "Also write the score and per-frame predictions as JSON");
      sub.add_option("--threshold", a->threshold, "Ink threshold 1..254 for finding digits")->capture_default_str();
      sub.add_option("--digit-scale", a->digit_scale, "Frame pixels per digits.png pixel (28/20 for the shipped data)")
          ->capture_default_str();
      sub.add_option("--min-separation", a->min_separation,
                     "Digits whose boxes are closer than this (digits.png pixels; negative: intersecting) count as overlap")
          ->capture_default_str();
      sub.add_flag("--per-frame", a->per_frame, "Print each frame's predictions");
      sub.add_flag("--overwrite", a->overwrite, "Replace an existing JSON file");
      sub.callback([a] { run_score_digits(*a); });
    });

}  // namespace
}  // namespace ditgen::app
