#include "eval/digits.h"

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/objdetect.hpp>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <stdexcept>

namespace ditgen::eval {

namespace {

constexpr const char* kFormatName = "ditgen-digits-classifier";
constexpr int kFormatVersion = 1;
constexpr const char* kFeatureName = "deskew + HOG(20x20 window, 10x10 blocks, stride 5, 10x10 cells, 9 signed bins) + 10x10 pixels";

const cv::HOGDescriptor& hog() {
  static const cv::HOGDescriptor h(cv::Size(20, 20), cv::Size(10, 10), cv::Size(5, 5), cv::Size(10, 10), 9,
                                   /*derivAperture=*/1, /*winSigma=*/-1, cv::HOGDescriptor::L2Hys,
                                   /*L2HysThreshold=*/0.2, /*gammaCorrection=*/true,
                                   cv::HOGDescriptor::DEFAULT_NLEVELS, /*signedGradient=*/true);
  return h;
}

cv::Mat feature_matrix(const std::vector<cv::Mat>& cells) {
  cv::Mat m(int(cells.size()), kDigitFeatureCount, CV_32F);
  for (int i = 0; i < int(cells.size()); ++i) {
    const std::vector<float> f = digit_features(cells[i]);
    std::copy(f.begin(), f.end(), m.ptr<float>(i));
  }
  return m;
}

cv::Ptr<cv::ml::SVM> make_svm(double c, double gamma) {
  auto svm = cv::ml::SVM::create();
  svm->setType(cv::ml::SVM::C_SVC);
  svm->setKernel(cv::ml::SVM::RBF);
  svm->setC(c);
  svm->setGamma(gamma);
  svm->setTermCriteria(cv::TermCriteria(cv::TermCriteria::MAX_ITER + cv::TermCriteria::EPS, 100000, 1e-6));
  return svm;
}

double accuracy_of(const cv::ml::SVM& svm, const cv::Mat& x, const std::vector<int>& y) {
  if (y.empty()) return std::numeric_limits<double>::quiet_NaN();
  cv::Mat pred;
  svm.predict(x, pred);
  int ok = 0;
  for (int i = 0; i < x.rows; ++i) ok += int(std::lround(pred.at<float>(i))) == y[i];
  return double(ok) / double(y.size());
}

}  // namespace

DigitSplit load_digit_split(const std::string& sheet_path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(sheet_path, ec))
    throw std::runtime_error("digit sheet '" + sheet_path + "' not found: run " + kFetchDigitsScript +
                             " (from the repository root) to extract it");
  const cv::Mat sheet = cv::imread(sheet_path, cv::IMREAD_GRAYSCALE);
  if (sheet.empty()) throw std::runtime_error("cannot read '" + sheet_path + "' as an image");
  const int rows = 10 * kDigitsPerClass / 100, cols = 100;
  if (sheet.rows != rows * kDigitCell || sheet.cols != cols * kDigitCell)
    throw std::runtime_error("'" + sheet_path + "' is " + std::to_string(sheet.cols) + "x" + std::to_string(sheet.rows) +
                             ", expected OpenCV's digits.png (2000x1000); run " + kFetchDigitsScript);
  DigitSplit split;
  for (int cls = 0; cls < 10; ++cls) {
    for (int k = 0; k < kDigitsPerClass; ++k) {
      const int r = cls * (kDigitsPerClass / cols) + k / cols, c = k % cols;
      cv::Mat cell = sheet(cv::Rect(c * kDigitCell, r * kDigitCell, kDigitCell, kDigitCell)).clone();
      DigitSet& set = k < kTrainPerClass ? split.train : split.holdout;
      set.images.push_back(std::move(cell));
      set.labels.push_back(cls);
    }
  }
  return split;
}

cv::Mat deskew_digit(const cv::Mat& cell) {
  const cv::Moments m = cv::moments(cell);
  if (std::abs(m.mu02) < 1e-2) return cell.clone();
  const double skew = m.mu11 / m.mu02;
  const cv::Matx23d warp(1, skew, -0.5 * kDigitCell * skew, 0, 1, 0);
  cv::Mat out;
  cv::warpAffine(cell, out, warp, cell.size(), cv::WARP_INVERSE_MAP | cv::INTER_LINEAR);
  return out;
}

std::vector<float> digit_features(const cv::Mat& cell) {
  if (cell.rows != kDigitCell || cell.cols != kDigitCell || cell.type() != CV_8UC1)
    throw std::invalid_argument("digit_features: expected a 20x20 8-bit grayscale cell, got " + std::to_string(cell.cols) +
                                "x" + std::to_string(cell.rows) + " of type " + std::to_string(cell.type()));
  const cv::Mat d = deskew_digit(cell);
  std::vector<float> f;
  hog().compute(d, f);
  if (f.size() != 81) throw std::logic_error("HOG descriptor size " + std::to_string(f.size()) + ", expected 81");
  cv::Mat small;
  cv::resize(d, small, cv::Size(10, 10), 0, 0, cv::INTER_AREA);
  for (int y = 0; y < 10; ++y)
    for (int x = 0; x < 10; ++x) f.push_back(float(small.at<uint8_t>(y, x)) / 255.0f * 0.5f);
  return f;
}

DigitClassifier DigitClassifier::train(const DigitSet& train, const TrainOptions& o, TrainReport* report) {
  if (train.images.empty() || train.images.size() != train.labels.size())
    throw std::invalid_argument("DigitClassifier::train: empty training set or label count mismatch");
  const cv::Mat x = feature_matrix(train.images);
  const cv::Mat y(train.labels, true);
  double c = o.c, gamma = o.gamma, tuning_acc = std::numeric_limits<double>::quiet_NaN();
  if (o.tune) {
    if (o.c_grid.empty() || o.gamma_scale_grid.empty()) throw std::invalid_argument("DigitClassifier::train: empty grid");
    // Inner split: per class, the last 50 training digits (in order) validate.
    std::vector<int> count(10, 0), total(10, 0);
    for (int l : train.labels) ++total.at(size_t(l));
    std::vector<int> fit_rows, val_rows;
    for (int i = 0; i < int(train.labels.size()); ++i) {
      const int l = train.labels[i];
      (count[l]++ < total[l] - kHoldoutPerClass ? fit_rows : val_rows).push_back(i);
    }
    auto rows_of = [&](const std::vector<int>& idx, cv::Mat& xs, std::vector<int>& ys) {
      xs.create(int(idx.size()), x.cols, CV_32F);
      ys.clear();
      for (int i = 0; i < int(idx.size()); ++i) {
        x.row(idx[i]).copyTo(xs.row(i));
        ys.push_back(train.labels[idx[i]]);
      }
    };
    cv::Mat xf, xv;
    std::vector<int> yf, yv;
    rows_of(fit_rows, xf, yf);
    rows_of(val_rows, xv, yv);
    // Mean squared distance between features of a subsample of the fitting rows.
    double d2 = 0;
    int pairs = 0;
    for (int i = 0; i < xf.rows; i += 7)
      for (int j = i + 7; j < xf.rows; j += 7) {
        d2 += cv::norm(xf.row(i), xf.row(j), cv::NORM_L2SQR);
        ++pairs;
      }
    d2 = pairs ? d2 / pairs : 1.0;
    const int nc = int(o.c_grid.size()), ng = int(o.gamma_scale_grid.size());
    std::vector<double> acc(size_t(nc * ng));
    const cv::Mat yfm(yf, true);
#pragma omp parallel for schedule(dynamic)
    for (int k = 0; k < nc * ng; ++k) {
      auto svm = make_svm(o.c_grid[k / ng], o.gamma_scale_grid[k % ng] / d2);
      svm->train(xf, cv::ml::ROW_SAMPLE, yfm);
      acc[k] = accuracy_of(*svm, xv, yv);
    }
    int best = 0;
    for (int k = 0; k < nc * ng; ++k) {
      if (o.verbose)
        std::fprintf(stderr, "  C=%-6g gamma=%-8.4g (x%g / mean sq. distance): validation accuracy %.4f\n",
                     o.c_grid[k / ng], o.gamma_scale_grid[k % ng] / d2, o.gamma_scale_grid[k % ng], acc[k]);
      if (acc[k] > acc[best]) best = k;
    }
    c = o.c_grid[best / ng];
    gamma = o.gamma_scale_grid[best % ng] / d2;
    tuning_acc = acc[best];
  }
  DigitClassifier clf;
  clf.svm_ = make_svm(c, gamma);
  clf.svm_->train(x, cv::ml::ROW_SAMPLE, y);
  clf.c_ = c;
  clf.gamma_ = gamma;
  if (report) {
    report->c = c;
    report->gamma = gamma;
    report->tuning_accuracy = tuning_acc;
    report->support_vectors = clf.support_vectors();
    report->train_samples = x.rows;
  }
  return clf;
}

int DigitClassifier::support_vectors() const { return empty() ? 0 : svm_->getSupportVectors().rows; }

void DigitClassifier::save(const std::string& path, double holdout_accuracy) const {
  if (empty()) throw std::logic_error("DigitClassifier::save: the classifier is not trained");
  cv::FileStorage fs(path, cv::FileStorage::WRITE);
  if (!fs.isOpened()) throw std::runtime_error("cannot open '" + path + "' for writing");
  fs << "format" << kFormatName;
  fs << "version" << kFormatVersion;
  fs << "features" << kFeatureName;
  fs << "feature_count" << kDigitFeatureCount;
  fs << "cell_size" << kDigitCell;
  fs << "C" << c_;
  fs << "gamma" << gamma_;
  if (!std::isnan(holdout_accuracy)) fs << "holdout_accuracy" << holdout_accuracy;
  fs << "svm" << "{";
  svm_->write(fs);
  fs << "}";
  fs.release();
}

DigitClassifier DigitClassifier::load(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    throw std::runtime_error("digit classifier '" + path + "' not found");
  cv::FileStorage fs;
  try {
    fs.open(path, cv::FileStorage::READ);
  } catch (const cv::Exception& e) {
    throw std::runtime_error("cannot read digit classifier '" + path + "': " + e.what());
  }
  if (!fs.isOpened()) throw std::runtime_error("cannot read digit classifier '" + path + "'");
  std::string format;
  fs["format"] >> format;
  if (format != kFormatName) throw std::runtime_error("'" + path + "' is not a ditgen digit classifier");
  int version = 0, nfeat = 0;
  fs["version"] >> version;
  fs["feature_count"] >> nfeat;
  if (version != kFormatVersion || nfeat != kDigitFeatureCount)
    throw std::runtime_error("digit classifier '" + path + "' has format version " + std::to_string(version) + " with " +
                             std::to_string(nfeat) + " features; this build reads version " +
                             std::to_string(kFormatVersion) + " with " + std::to_string(kDigitFeatureCount));
  DigitClassifier clf;
  fs["C"] >> clf.c_;
  fs["gamma"] >> clf.gamma_;
  if (!fs["holdout_accuracy"].empty()) fs["holdout_accuracy"] >> clf.stored_holdout_accuracy_;
  clf.svm_ = cv::ml::SVM::create();
  try {
    clf.svm_->read(fs["svm"]);
  } catch (const cv::Exception& e) {
    throw std::runtime_error("digit classifier '" + path + "' is damaged: " + e.what());
  }
  if (clf.empty() || clf.svm_->getVarCount() != kDigitFeatureCount)
    throw std::runtime_error("digit classifier '" + path + "' holds no usable SVM");
  return clf;
}

int DigitClassifier::predict(const cv::Mat& cell) const {
  if (empty()) throw std::logic_error("DigitClassifier::predict: the classifier is not trained");
  const std::vector<float> f = digit_features(cell);
  const cv::Mat x(1, kDigitFeatureCount, CV_32F, const_cast<float*>(f.data()));
  return int(std::lround(svm_->predict(x)));
}

std::vector<int> DigitClassifier::predict(const std::vector<cv::Mat>& cells) const {
  if (empty()) throw std::logic_error("DigitClassifier::predict: the classifier is not trained");
  std::vector<int> out;
  if (cells.empty()) return out;
  cv::Mat pred;
  svm_->predict(feature_matrix(cells), pred);
  for (int i = 0; i < pred.rows; ++i) out.push_back(int(std::lround(pred.at<float>(i))));
  return out;
}

double DigitClassifier::accuracy(const DigitSet& set) const {
  if (empty()) throw std::logic_error("DigitClassifier::accuracy: the classifier is not trained");
  return accuracy_of(*svm_, feature_matrix(set.images), set.labels);
}

}  // namespace ditgen::eval
