// score-digits on synthetic Moving-MNIST frames rendered here from hold-out digits, the way
// tools/train/data.py renders them (20x20 digit scaled bilinearly to 28x28, combined with max
// on a black 64x64 frame), through the library and end to end through the ditgen binary.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "eval/digits.h"
#include "eval/score_digits.h"
#include "tests/test_util.h"

namespace ditgen::eval {
namespace {

namespace fs = std::filesystem;

const std::string kSheet = std::string(DITGEN_SOURCE_DIR) + "/data/digits.png";
const std::string kModel = std::string(DITGEN_SOURCE_DIR) + "/models/digits-classifier.yml.gz";

// Loaded once; a missing sheet fails every test that needs it with a message naming the
// fetch script (no silent skip).
const DigitSplit* split_or_null() {
  static const DigitSplit* s = [] {
    std::error_code ec;
    return fs::is_regular_file(kSheet, ec) ? new DigitSplit(load_digit_split(kSheet)) : nullptr;
  }();
  return s;
}
#define REQUIRE_SHEET()                                                                                    \
  ASSERT_NE(split_or_null(), nullptr) << "data/digits.png is missing: run tools/data/fetch_digits.sh from " \
                                         "the repository root before the tests"

const DigitClassifier& shipped() {
  static const DigitClassifier c = DigitClassifier::load(kModel);
  return c;
}

cv::Mat scaled(const cv::Mat& cell) {
  cv::Mat d;
  cv::resize(cell, d, cv::Size(28, 28), 0, 0, cv::INTER_LINEAR);
  return d;
}

// A 64x64 frame with the digits' 28x28 boxes at the given top-left corners (x, y).
cv::Mat render(const cv::Mat& a, cv::Point pa, const cv::Mat& b, cv::Point pb) {
  cv::Mat f = cv::Mat::zeros(64, 64, CV_8U);
  for (auto [cell, p] : {std::pair{a, pa}, std::pair{b, pb}}) {
    cv::Mat roi = f(cv::Rect(p.x, p.y, 28, 28));
    cv::max(roi, scaled(cell), roi);
  }
  return f;
}

TEST(ScoreDigits, HoldoutDigitsRoundTrip) {
  REQUIRE_SHEET();
  const DigitSet& h = split_or_null()->holdout;
  int blobs_ok = 0, blobs = 0, frames_ok = 0, frames_scored = 0;
  for (size_t i = 0; i < h.size(); ++i) {
    const size_t j = (i + 250) % h.size();  // a digit of another class
    const cv::Mat f = render(h.images[i], {2, 2}, h.images[j], {34, 34});
    const FrameResult r = score_frame(f, h.labels[i], h.labels[j], shipped());
    ASSERT_EQ(r.status, "ok") << "hold-out digits " << i << ", " << j;
    ++frames_scored;
    frames_ok += r.correct;
    blobs += 2;
    blobs_ok += (r.predicted[0] == h.labels[i]) + (r.predicted[1] == h.labels[j]);
  }
  const double blob_acc = double(blobs_ok) / blobs, frame_acc = double(frames_ok) / frames_scored;
  std::printf("round-trip accuracy on hold-out digits: %.4f per digit, %.4f per frame\n", blob_acc, frame_acc);
  EXPECT_GE(blob_acc, 0.95);
  EXPECT_GE(frame_acc, 0.90);
}


// Two hold-out digits of different classes that the classifier reads correctly at every
// position used below (searched deterministically from the start of the hold-out).
struct Pair {
  cv::Mat a, b;
  int la, lb;
};
const std::vector<std::pair<cv::Point, cv::Point>> kSeparated = {
    {{0, 0}, {36, 36}}, {{36, 0}, {0, 36}}, {{2, 18}, {36, 20}}, {{18, 0}, {16, 36}}, {{30, 2}, {4, 33}}};
const std::vector<std::pair<cv::Point, cv::Point>> kOverlapping = {{{10, 10}, {10, 10}}, {{12, 14}, {20, 18}}};

Pair good_pair() {
  const DigitSet& h = split_or_null()->holdout;
  for (size_t i = 0; i < h.size(); ++i) {
    const size_t j = (i + 170) % h.size();
    if (h.labels[i] == h.labels[j]) continue;
    bool ok = true;
    for (const auto& [pa, pb] : kSeparated)
      ok = ok && score_frame(render(h.images[i], pa, h.images[j], pb), h.labels[i], h.labels[j], shipped()).correct;
    if (ok) return {h.images[i], h.images[j], h.labels[i], h.labels[j]};
  }
  throw std::runtime_error("no hold-out pair is read correctly everywhere");
}

std::vector<cv::Mat> test_video(const Pair& p) {
  std::vector<cv::Mat> frames;
  for (const auto& [pa, pb] : kSeparated) frames.push_back(render(p.a, pa, p.b, pb));
  for (const auto& [pa, pb] : kOverlapping) frames.push_back(render(p.a, pa, p.b, pb));
  return frames;
}

TEST(ScoreDigits, SeparatedDigitsAreCorrect) {
  REQUIRE_SHEET();
  const Pair p = good_pair();
  for (const auto& [pa, pb] : kSeparated) {
    const FrameResult r = score_frame(render(p.a, pa, p.b, pb), p.la, p.lb, shipped());
    EXPECT_EQ(r.status, "ok");
    EXPECT_TRUE(r.scored);
    EXPECT_TRUE(r.correct);
    ASSERT_EQ(r.blobs.size(), 2u);
    // Label order does not matter; other labels are wrong.
    EXPECT_TRUE(score_frame(render(p.a, pa, p.b, pb), p.lb, p.la, shipped()).correct);
    const FrameResult wrong = score_frame(render(p.a, pa, p.b, pb), p.la, p.la, shipped());
    EXPECT_TRUE(wrong.scored);
    EXPECT_FALSE(wrong.correct);
  }
  // The same digit twice: the multiset {a, a}.
  const FrameResult twice = score_frame(render(p.a, {0, 0}, p.a, {36, 36}), p.la, p.la, shipped());
  EXPECT_EQ(twice.status, "ok");
  EXPECT_TRUE(twice.correct);
}

TEST(ScoreDigits, OverlappingDigitsAreCountedApart) {
  REQUIRE_SHEET();
  const Pair p = good_pair();
  for (const auto& [pa, pb] : kOverlapping) {
    const FrameResult r = score_frame(render(p.a, pa, p.b, pb), p.la, p.lb, shipped());
    EXPECT_EQ(r.status, "overlap");
    EXPECT_FALSE(r.scored);
    EXPECT_FALSE(r.correct);
  }
  const DigitScore s = score_frames(test_video(p), p.la, p.lb, shipped());
  EXPECT_EQ(s.frames, int(kSeparated.size() + kOverlapping.size()));
  EXPECT_EQ(s.overlap_frames, int(kOverlapping.size()));
  EXPECT_EQ(s.scored_frames, int(kSeparated.size()));
  EXPECT_EQ(s.correct_frames, int(kSeparated.size()));
  EXPECT_DOUBLE_EQ(s.fraction, 1.0);
  ASSERT_EQ(s.per_frame.size(), size_t(s.frames));
  EXPECT_EQ(s.per_frame.back().frame, s.frames - 1);
}

TEST(ScoreDigits, EmptyExtraNoiseAndFragments) {
  REQUIRE_SHEET();
  const Pair p = good_pair();
  // No digits: scored and wrong.
  const FrameResult empty = score_frame(cv::Mat::zeros(64, 64, CV_8U), p.la, p.lb, shipped());
  EXPECT_EQ(empty.status, "no_digits");
  EXPECT_TRUE(empty.scored);
  EXPECT_FALSE(empty.correct);
  // Three digits: scored and wrong.
  cv::Mat three = render(p.a, {0, 0}, p.b, {36, 0});
  cv::Mat roi = three(cv::Rect(18, 36, 28, 28));
  cv::max(roi, scaled(p.a), roi);
  const FrameResult extra = score_frame(three, p.la, p.lb, shipped());
  EXPECT_EQ(extra.status, "extra_blobs");
  EXPECT_EQ(extra.predicted.size(), 3u);
  EXPECT_TRUE(extra.scored);
  EXPECT_FALSE(extra.correct);
  // Single-pixel specks are ignored; a small stroke fragment next to a digit joins it.
  cv::Mat f = render(p.a, {0, 0}, p.b, {36, 36});
  f.at<uint8_t>(60, 2) = 255;
  f.at<uint8_t>(3, 60) = 200;
  const FrameResult specks = score_frame(f, p.la, p.lb, shipped());
  EXPECT_EQ(specks.status, "ok");
  EXPECT_TRUE(specks.correct);
  std::string status;
  const auto blobs = find_digit_blobs(render(p.a, {0, 0}, p.b, {36, 36}), ScoreOptions{}, &status);
  ASSERT_EQ(blobs.size(), 2u);
  cv::Mat frag = render(p.a, {0, 0}, p.b, {36, 36});
  const cv::Rect bb = blobs[0].box;
  cv::rectangle(frag, cv::Rect(bb.x + bb.width + 1, bb.y + 2, 2, 2), cv::Scalar(255), cv::FILLED);
  const FrameResult joined = score_frame(frag, p.la, p.lb, shipped());
  EXPECT_EQ(joined.status, "ok");
  EXPECT_EQ(joined.blobs.size(), 2u);
}

TEST(ScoreDigits, EntangledBoxesAreOverlap) {
  // An L-shaped stroke and a bar inside its bounding box that does not touch it: two blobs,
  // but their boxes intersect.
  cv::Mat f = cv::Mat::zeros(64, 64, CV_8U);
  cv::rectangle(f, cv::Rect(10, 10, 3, 22), cv::Scalar(255), cv::FILLED);
  cv::rectangle(f, cv::Rect(10, 29, 20, 3), cv::Scalar(255), cv::FILLED);
  cv::rectangle(f, cv::Rect(20, 8, 3, 16), cv::Scalar(255), cv::FILLED);
  std::string status;
  EXPECT_EQ(find_digit_blobs(f, ScoreOptions{}, &status).size(), 2u);
  EXPECT_EQ(status, "overlap");
  ScoreOptions lax;
  lax.min_separation_cells = -100;
  find_digit_blobs(f, lax, &status);
  EXPECT_EQ(status, "ok");
  // The same shapes apart are two digits.
  cv::Mat g = cv::Mat::zeros(64, 64, CV_8U);
  cv::rectangle(g, cv::Rect(10, 10, 3, 22), cv::Scalar(255), cv::FILLED);
  cv::rectangle(g, cv::Rect(40, 30, 3, 22), cv::Scalar(255), cv::FILLED);
  find_digit_blobs(g, ScoreOptions{}, &status);
  EXPECT_EQ(status, "ok");
  // A short stroke (too short for a whole digit) just above a digit, which it cannot join
  // without exceeding a digit's size: entangled, overlap. The same stroke far from both
  // digits is dropped; close enough to join, it joins.
  cv::Mat h = g.clone();
  cv::rectangle(h, cv::Rect(36, 22, 12, 5), cv::Scalar(255), cv::FILLED);
  EXPECT_EQ(find_digit_blobs(h, ScoreOptions{}, &status).size(), 2u);
  EXPECT_EQ(status, "overlap");
  cv::Mat k = g.clone();
  cv::rectangle(k, cv::Rect(45, 5, 12, 5), cv::Scalar(255), cv::FILLED);
  EXPECT_EQ(find_digit_blobs(k, ScoreOptions{}, &status).size(), 2u);
  EXPECT_EQ(status, "ok");
  cv::Mat m = g.clone();
  cv::rectangle(m, cv::Rect(36, 27, 12, 2), cv::Scalar(255), cv::FILLED);
  const auto joined = find_digit_blobs(m, ScoreOptions{}, &status);
  ASSERT_EQ(joined.size(), 2u);
  EXPECT_EQ(status, "ok");
  EXPECT_EQ(joined[1].box, cv::Rect(36, 27, 12, 25));
}

TEST(ScoreDigits, FloatVideo) {
  REQUIRE_SHEET();
  const Pair p = good_pair();
  const std::vector<cv::Mat> frames = test_video(p);
  std::vector<float> x;
  for (const auto& f : frames)
    for (int i = 0; i < 64 * 64; ++i) x.push_back(f.data[i] / 127.5f - 1.0f);
  const DigitScore s = score_frames_float(x.data(), int(frames.size()), 64, 64, 1, p.la, p.lb, shipped());
  EXPECT_EQ(s.correct_frames, int(kSeparated.size()));
  EXPECT_EQ(s.overlap_frames, int(kOverlapping.size()));
}

// A contact sheet as io/video.cpp writes it: frames in a grid of ceil(sqrt(T)) columns with
// 2-pixel borders of gray 96; unused cells stay gray.
cv::Mat contact_sheet(const std::vector<cv::Mat>& frames) {
  const int t = int(frames.size()), cols = int(std::ceil(std::sqrt(double(t)))), rows = (t + cols - 1) / cols;
  const int h = frames[0].rows, w = frames[0].cols;
  cv::Mat s(rows * (h + 2) + 2, cols * (w + 2) + 2, CV_8U, cv::Scalar(96));
  for (int i = 0; i < t; ++i) frames[i].copyTo(s(cv::Rect(2 + (i % cols) * (w + 2), 2 + (i / cols) * (h + 2), w, h)));
  return s;
}

TEST(ScoreDigits, ContactSheetSplit) {
  REQUIRE_SHEET();
  const std::vector<cv::Mat> frames = test_video(good_pair());  // 7 frames: 3x3 grid, 2 unused
  const std::vector<cv::Mat> back = split_contact_sheet(contact_sheet(frames));
  ASSERT_EQ(back.size(), frames.size());
  for (size_t i = 0; i < frames.size(); ++i) EXPECT_EQ(cv::norm(back[i], frames[i], cv::NORM_INF), 0.0) << i;
  EXPECT_TRUE(split_contact_sheet(frames[0]).empty());
}

nlohmann::json read_json(const std::string& path) {
  std::ifstream f(path);
  return nlohmann::json::parse(f);
}

void expect_scores(const nlohmann::json& j, const Pair& p, const std::string& what) {
  SCOPED_TRACE(what);
  const int n = int(kSeparated.size() + kOverlapping.size());
  EXPECT_EQ(j.at("frames").get<int>(), n);
  EXPECT_EQ(j.at("overlap_frames").get<int>(), int(kOverlapping.size()));
  EXPECT_EQ(j.at("scored_frames").get<int>(), int(kSeparated.size()));
  EXPECT_EQ(j.at("correct_frames").get<int>(), int(kSeparated.size()));
  EXPECT_DOUBLE_EQ(j.at("fraction").get<double>(), 1.0);
  EXPECT_EQ(j.at("labels"), nlohmann::json({p.la, p.lb}));
  ASSERT_EQ(j.at("per_frame").size(), size_t(n));
  EXPECT_EQ(j["per_frame"][0].at("status"), "ok");
  EXPECT_EQ(j["per_frame"][0].at("predicted").size(), 2u);
  EXPECT_EQ(j["per_frame"][n - 1].at("status"), "overlap");
}

TEST(ScoreDigitsCommand, EndToEnd) {
  REQUIRE_SHEET();
  const Pair p = good_pair();
  const std::vector<cv::Mat> frames = test_video(p);
  test::TempDir dir;
  fs::create_directory(dir / "frames");
  for (size_t i = 0; i < frames.size(); ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "frame_%04zu.png", i);
    ASSERT_TRUE(cv::imwrite(dir / ("frames/" + std::string(name)), frames[i]));
  }
  ASSERT_TRUE(cv::imwrite(dir / "sheet.png", contact_sheet(frames)));
  {
    cv::VideoWriter vw(dir / "v.mkv", cv::CAP_FFMPEG, cv::VideoWriter::fourcc('F', 'F', 'V', '1'), 8, cv::Size(64, 64), true);
    ASSERT_TRUE(vw.isOpened()) << "OpenCV's FFmpeg backend cannot write FFV1 .mkv";
    for (const auto& f : frames) {
      cv::Mat bgr;
      cv::cvtColor(f, bgr, cv::COLOR_GRAY2BGR);
      vw.write(bgr);
    }
  }
  const std::string labels = std::to_string(p.la) + "," + std::to_string(p.lb);
  const std::string clf = " --classifier " + kModel;
  for (const std::string input : {"frames", "sheet.png", "v.mkv"}) {
    const auto r = test::run_ditgen("score-digits --video " + (dir / input) + " --labels " + labels + clf + " --json " +
                                    (dir / (input + ".json")));
    ASSERT_EQ(r.status, 0) << input << ": " << r.output;
    EXPECT_NE(r.output.find("overlap_frames: " + std::to_string(kOverlapping.size())), std::string::npos) << r.output;
    expect_scores(read_json(dir / (input + ".json")), p, input);
  }
  // A single frame PNG.
  const auto one = test::run_ditgen("score-digits --video " + (dir / "frames/frame_0000.png") + " --labels " +
                                    std::to_string(p.lb) + "," + std::to_string(p.la) + clf + " --json " + (dir / "one.json"));
  ASSERT_EQ(one.status, 0) << one.output;
  const auto j1 = read_json(dir / "one.json");
  EXPECT_EQ(j1.at("frames").get<int>(), 1);
  EXPECT_EQ(j1.at("correct_frames").get<int>(), 1);
  // The default classifier is found from the repository root.
  const fs::path cwd = fs::current_path();
  fs::current_path(DITGEN_SOURCE_DIR);
  const auto def = test::run_ditgen("score-digits --video " + (dir / "frames") + " --labels " + labels);
  fs::current_path(cwd);
  EXPECT_EQ(def.status, 0) << def.output;
  EXPECT_NE(def.output.find("fraction: 1.0000"), std::string::npos) << def.output;
}

TEST(ScoreDigitsCommand, BadInput) {
  test::TempDir dir;
  const std::string clf = " --classifier " + kModel;
  cv::imwrite(dir / "f.png", cv::Mat::zeros(64, 64, CV_8U));
  const std::string video = " --video " + (dir / "f.png");
  auto missing = test::run_ditgen("score-digits --video " + (dir / "none.mp4") + " --labels 3,7" + clf);
  EXPECT_EQ(missing.status, 2) << missing.output;
  EXPECT_NE(missing.output.find("does not exist"), std::string::npos) << missing.output;
  for (const char* bad : {"3", "3,7,1", "3,12", "a,b"}) {
    const auto r = test::run_ditgen("score-digits" + video + " --labels '" + bad + "'" + clf);
    EXPECT_EQ(r.status, 2) << bad << ": " << r.output;
    EXPECT_NE(r.output.find("--labels"), std::string::npos) << r.output;
  }
  EXPECT_EQ(test::run_ditgen("score-digits" + video + " --labels 3,7 --classifier " + (dir / "none.yml.gz")).status, 2);
  EXPECT_EQ(test::run_ditgen("score-digits" + video + clf).status, 2);  // --labels required
  {
    std::ofstream junk(dir / "junk.mp4");
    junk << "not a video";
  }
  const auto unreadable = test::run_ditgen("score-digits --video " + (dir / "junk.mp4") + " --labels 3,7" + clf);
  EXPECT_EQ(unreadable.status, 1) << unreadable.output;
  // An empty frame is scored (no digits) and wrong.
  const auto empty = test::run_ditgen("score-digits" + video + " --labels 3,7" + clf);
  EXPECT_EQ(empty.status, 0) << empty.output;
  EXPECT_NE(empty.output.find("fraction: 0.0000"), std::string::npos) << empty.output;
}

}  // namespace
}  // namespace ditgen::eval
