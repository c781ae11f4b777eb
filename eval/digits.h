#pragma once
// OpenCV's handwritten-digit sheet and the digit classifier shipped with the project.
//
// The sheet (data/digits.png, extracted by tools/data/fetch_digits.sh) holds 50 rows × 100
// columns of 20×20 white-on-black digits; class = row / 5, 500 digits a class. A class's
// digits are taken in reading order (row by row, left to right); the first 450 are the
// training split and the last 50 (the right half of the class's fifth row) the fixed
// hold-out, the same split as tools/train/data.py.
//
// Classifier: each 20×20 cell is deskewed by its image moments (as OpenCV's digits sample
// does), then described by a HOG descriptor (window 20×20, blocks 10×10 with stride 5,
// cells 10×10, 9 signed orientation bins: 81 values) concatenated with the deskewed digit
// area-averaged to 10×10 (100 values, scaled to [0, 0.5]); an RBF-kernel C-SVM
// (cv::ml::SVM) classifies the 181 features. C and γ are chosen on the training split
// only (see TrainOptions).
#include <opencv2/core.hpp>
#include <opencv2/ml.hpp>
#include <limits>
#include <string>
#include <vector>

namespace ditgen::eval {

constexpr int kDigitCell = 20;             // side of a digit cell in the sheet
constexpr int kDigitsPerClass = 500;
constexpr int kHoldoutPerClass = 50;
constexpr int kTrainPerClass = kDigitsPerClass - kHoldoutPerClass;

// The script that makes data/digits.png, named in error messages.
constexpr const char* kFetchDigitsScript = "tools/data/fetch_digits.sh";

struct DigitSet {
  std::vector<cv::Mat> images;  // 20×20 CV_8UC1, white digit on black
  std::vector<int> labels;      // 0..9
  size_t size() const { return images.size(); }
};

struct DigitSplit {
  DigitSet train;    // 450 a class, classes in order 0..9
  DigitSet holdout;  // 50 a class
};

// Reads the sheet and splits it. Throws std::runtime_error when the file is missing (the
// message says to run tools/data/fetch_digits.sh) or is not a 1000×2000 image.
DigitSplit load_digit_split(const std::string& sheet_path);

// Deskews a 20×20 CV_8UC1 cell by its second-order central moments (OpenCV digits sample).
cv::Mat deskew_digit(const cv::Mat& cell);

// The 181 features of a 20×20 CV_8UC1 cell (deskewed inside). Throws std::invalid_argument
// for a cell of another size or type.
std::vector<float> digit_features(const cv::Mat& cell);
constexpr int kDigitFeatureCount = 181;

struct TrainOptions {
  // Tuning: the training split (450 a class) is split again, the last 50 of each class
  // validating the others (the same shape as the real hold-out); every (C, γ) of the grid is
  // trained on the rest and scored there; the best pair (the first in grid order on ties)
  // is then trained on all training digits. γ is given as a multiple of 1 / (mean squared
  // distance between training features), so the grid does not depend on feature scale.
  bool tune = true;
  std::vector<double> c_grid = {1, 3, 10, 30};
  std::vector<double> gamma_scale_grid = {0.5, 1, 2, 4};
  // Without tuning: these are used as given (gamma as an absolute value).
  double c = 10;
  double gamma = 0.2;
  bool verbose = false;  // prints the grid to stderr
};

struct TrainReport {
  double c = 0, gamma = 0;
  double tuning_accuracy = 0;  // on the inner validation split (NaN without tuning)
  int support_vectors = 0;
  int train_samples = 0;
};

class DigitClassifier {
 public:
  DigitClassifier() = default;

  static DigitClassifier train(const DigitSet& train, const TrainOptions& options = {}, TrainReport* report = nullptr);

  // Loads a model written by save(); throws std::runtime_error naming the path when the
  // file is missing or is not a ditgen digit classifier.
  static DigitClassifier load(const std::string& path);
  // Writes cv::FileStorage YAML (gzip when the path ends in .gz). `holdout_accuracy` (if
  // not NaN) is stored alongside, for the record.
  void save(const std::string& path, double holdout_accuracy = std::numeric_limits<double>::quiet_NaN()) const;

  bool empty() const { return svm_.empty() || !svm_->isTrained(); }
  // Label 0..9 of one 20×20 CV_8UC1 cell.
  int predict(const cv::Mat& cell) const;
  std::vector<int> predict(const std::vector<cv::Mat>& cells) const;
  // Fraction of `set` classified correctly.
  double accuracy(const DigitSet& set) const;

  double c() const { return c_; }
  double gamma() const { return gamma_; }
  double stored_holdout_accuracy() const { return stored_holdout_accuracy_; }
  int support_vectors() const;

 private:
  cv::Ptr<cv::ml::SVM> svm_;
  double c_ = 0, gamma_ = 0;
  double stored_holdout_accuracy_ = std::numeric_limits<double>::quiet_NaN();
};

}  // namespace ditgen::eval
