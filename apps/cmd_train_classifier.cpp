// ditgen train-classifier: trains the digit classifier (HOG + SVM) on the training split of
// OpenCV's digits.png and reports its accuracy on the fixed hold-out (the last 50 digits of
// each class).
#include <chrono>
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <iostream>

#include "apps/cli_common.h"
#include "apps/commands.h"
#include "eval/digits.h"

namespace ditgen::app {
namespace {

struct TrainClassifierArgs {
  std::string digits = "data/digits.png", out, json;
  double c = 0, gamma = 0;
  bool overwrite = false, quiet = false;
};

void run_train_classifier(const TrainClassifierArgs& a) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_regular_file(a.digits, ec))
    throw UsageError("digit sheet '" + a.digits + "' not found: run " + std::string(eval::kFetchDigitsScript) +
                     " first (it extracts data/digits.png)");
  if ((a.c > 0) != (a.gamma > 0)) throw UsageError("--C and --gamma go together (both fix the SVM; neither tunes it)");
  if (a.c < 0 || a.gamma < 0) throw UsageError("--C and --gamma must be positive");
  check_output_path(a.out, a.overwrite, false);
  if (!a.json.empty()) check_output_path(a.json, a.overwrite, false);

  const auto t0 = std::chrono::steady_clock::now();
  const eval::DigitSplit split = eval::load_digit_split(a.digits);
  eval::TrainOptions o;
  o.verbose = !a.quiet;
  if (a.c > 0) {
    o.tune = false;
    o.c = a.c;
    o.gamma = a.gamma;
  }
  if (!a.quiet)
    std::cerr << "training on " << split.train.size() << " digits, " << (o.tune ? "tuning C and gamma on the training split" : "fixed C and gamma")
              << "\n";
  eval::TrainReport rep;
  const eval::DigitClassifier clf = eval::DigitClassifier::train(split.train, o, &rep);
  const double train_acc = clf.accuracy(split.train);
  const double acc = clf.accuracy(split.holdout);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  // Save through a temporary name in the same directory so that a failure leaves no file.
  const fs::path out(a.out);
  const std::string tmp = (out.parent_path() / (".tmp-" + out.filename().string())).string();
  clf.save(tmp, acc);
  fs::rename(tmp, out, ec);
  if (ec) {
    fs::remove(tmp, ec);
    throw std::runtime_error("cannot move the classifier to '" + a.out + "'");
  }
  const auto bytes = fs::file_size(out, ec);

  const int wrong = int(std::lround((1.0 - acc) * double(split.holdout.size())));
  std::cout << std::fixed << std::setprecision(4) << "C: " << rep.c << "\ngamma: " << rep.gamma
            << "\nsupport_vectors: " << rep.support_vectors << "\ntrain_accuracy: " << train_acc
            << "\nholdout_accuracy: " << acc << " (" << split.holdout.size() - size_t(wrong) << "/" << split.holdout.size()
            << ")\nmodel: " << a.out << " (" << bytes << " bytes)\nseconds: " << std::setprecision(1) << seconds << "\n";
  if (!a.json.empty()) {
    nlohmann::json j = {{"digits", a.digits},
                        {"model", a.out},
                        {"model_bytes", bytes},
                        {"features", "deskew + HOG 81 + 10x10 pixels"},
                        {"C", rep.c},
                        {"gamma", rep.gamma},
                        {"tuned", o.tune},
                        {"support_vectors", rep.support_vectors},
                        {"train_samples", rep.train_samples},
                        {"holdout_samples", split.holdout.size()},
                        {"train_accuracy", train_acc},
                        {"holdout_accuracy", acc},
                        {"seconds", seconds}};
    if (o.tune) j["tuning_accuracy"] = rep.tuning_accuracy;
    write_json(a.json, j, a.overwrite);
  }
}

const Registrar reg("train-classifier",
                    "Train the digit classifier (HOG + SVM) on digits.png and report its hold-out accuracy",
                    [](CLI::App& sub) {
                      auto a = std::make_shared<TrainClassifierArgs>();
                      sub.add_option("--digits", a->digits, "OpenCV's digit sheet (made by tools/data/fetch_digits.sh)")
                          ->capture_default_str();
                      sub.add_option("--out", a->out, "Model file to write (.yml or .yml.gz)")->required();
                      sub.add_option("--json", a->json, "Also write the figures as JSON");
                      sub.add_option("--C", a->c, "SVM C (with --gamma: no tuning)");
                      sub.add_option("--gamma", a->gamma, "RBF gamma (with --C: no tuning)");
                      sub.add_flag("--overwrite", a->overwrite, "Replace existing output files");
                      sub.add_flag("--quiet", a->quiet, "No progress on stderr");
                      sub.callback([a] { run_train_classifier(*a); });
                    });

}  // namespace
}  // namespace ditgen::app
