#include "eval/score_digits.h"

#include "eval/metrics.h"

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <limits>
#include <stdexcept>

namespace ditgen::eval {

namespace fs = std::filesystem;

namespace {

// Where the sheet's digits have their intensity centroid (mean over the sheet: 9.85, 9.86).
constexpr double kCellCentroid = 9.85;
// Longer side of the largest sheet digit (16 pixels) plus a pixel of resampling blur.
constexpr double kSheetDigitExtent = 17.0;
constexpr uint8_t kSheetBorderGray = 96;  // io/video.cpp's contact-sheet border

std::string lower_ext(const fs::path& p) {
  std::string e = p.extension().string();
  for (auto& ch : e) ch = char(std::tolower(static_cast<unsigned char>(ch)));
  return e;
}

bool is_image_ext(const std::string& e) {
  return e == ".png" || e == ".jpg" || e == ".jpeg" || e == ".bmp" || e == ".pgm" || e == ".tif" || e == ".tiff";
}

cv::Mat to_gray8(const cv::Mat& m) {
  if (m.empty()) return m;
  cv::Mat g = m;
  if (m.channels() == 3) {
    cv::cvtColor(m, g, cv::COLOR_BGR2GRAY);
  } else if (m.channels() == 4) {
    cv::cvtColor(m, g, cv::COLOR_BGRA2GRAY);
  } else if (m.channels() != 1) {
    throw std::invalid_argument("frames must have 1, 3 or 4 channels, got " + std::to_string(m.channels()));
  }
  if (g.depth() != CV_8U) {
    cv::Mat c;
    if (g.depth() == CV_16U) {
      g.convertTo(c, CV_8U, 1.0 / 257.0);
    } else {
      g.convertTo(c, CV_8U);
    }
    g = c;
  }
  return g;
}

// Runs of consecutive indices in [0, n) where is_sep is false.
std::vector<std::pair<int, int>> runs(const std::vector<bool>& is_sep) {
  std::vector<std::pair<int, int>> out;
  int start = -1;
  for (int i = 0; i <= int(is_sep.size()); ++i) {
    const bool sep = i == int(is_sep.size()) || is_sep[i];
    if (!sep && start < 0) start = i;
    if (sep && start >= 0) {
      out.push_back({start, i - start});
      start = -1;
    }
  }
  return out;
}

struct Group {
  cv::Rect box;
  int area = 0;
  std::vector<int> comps;  // component labels
};

double box_gap(const cv::Rect& a, const cv::Rect& b) {
  const int gx = std::max({0, a.x - (b.x + b.width), b.x - (a.x + a.width)});
  const int gy = std::max({0, a.y - (b.y + b.height), b.y - (a.y + a.height)});
  return std::hypot(double(gx), double(gy));
}

int longer_side(const cv::Rect& r) { return std::max(r.width, r.height); }

// Larger of the horizontal and vertical gaps between two boxes (empty pixels between them;
// negative when the boxes intersect).
int box_separation(const cv::Rect& a, const cv::Rect& b) {
  const int gx = std::max(a.x, b.x) - std::min(a.x + a.width, b.x + b.width);
  const int gy = std::max(a.y, b.y) - std::min(a.y + a.height, b.y + b.height);
  return std::max(gx, gy);
}

// Components and groups of one frame (steps 1 to 3).
struct Analysis {
  cv::Mat labels;  // CV_32S component labels
  std::vector<Group> groups;
  bool entangled = false;  // a fragment lies next to a digit
};

Analysis analyse(const cv::Mat& gray, const ScoreOptions& o) {
  if (gray.empty() || gray.type() != CV_8UC1) throw std::invalid_argument("find_digit_blobs: expected an 8-bit grayscale frame");
  if (!(o.digit_scale > 0)) throw std::invalid_argument("digit_scale must be positive");
  const double s = o.digit_scale;
  Analysis an;
  cv::Mat bin = gray > o.threshold, stats, centroids;
  const int n = cv::connectedComponentsWithStats(bin, an.labels, stats, centroids, 8, CV_32S);
  const double min_area = o.min_area_cells * s * s;
  for (int i = 1; i < n; ++i) {
    const int area = stats.at<int>(i, cv::CC_STAT_AREA);
    if (area < min_area) continue;
    Group g;
    g.box = cv::Rect(stats.at<int>(i, cv::CC_STAT_LEFT), stats.at<int>(i, cv::CC_STAT_TOP), stats.at<int>(i, cv::CC_STAT_WIDTH),
                     stats.at<int>(i, cv::CC_STAT_HEIGHT));
    g.area = area;
    g.comps = {i};
    an.groups.push_back(std::move(g));
  }
  const double max_extent = o.max_extent_cells * s;
  // (A frame of noise with hundreds of blobs is not worth the quadratic merging: it ends
  // as "extra_blobs" or "overlap" either way.)
  while (an.groups.size() > 2 && an.groups.size() <= 64) {
    double best_gap = std::numeric_limits<double>::infinity();
    size_t bi = 0, bj = 0;
    for (size_t i = 0; i < an.groups.size(); ++i)
      for (size_t j = i + 1; j < an.groups.size(); ++j) {
        if (longer_side(an.groups[i].box | an.groups[j].box) > max_extent) continue;
        const double gap = box_gap(an.groups[i].box, an.groups[j].box);
        if (gap < best_gap) {
          best_gap = gap;
          bi = i;
          bj = j;
        }
      }
    if (!std::isfinite(best_gap)) break;
    Group& a = an.groups[bi];
    Group& b = an.groups[bj];
    a.box |= b.box;
    a.area += b.area;
    a.comps.insert(a.comps.end(), b.comps.begin(), b.comps.end());
    an.groups.erase(an.groups.begin() + std::ptrdiff_t(bj));
  }
  // Specks are dropped; groups too short to be a whole digit are fragments: next to a digit
  // they are strokes that could not be joined to one (entangled digits), alone they are
  // dropped.
  const double min_extent = o.min_extent_cells * s, min_height = o.min_height_cells * s;
  std::vector<Group> digits, fragments;
  for (auto& g : an.groups) {
    if (longer_side(g.box) < min_extent) continue;
    (g.box.height < min_height ? fragments : digits).push_back(std::move(g));
  }
  for (const auto& f : fragments)
    for (const auto& d : digits)
      if (box_separation(f.box, d.box) < o.fragment_gap_cells * s) an.entangled = true;
  an.groups = std::move(digits);
  std::sort(an.groups.begin(), an.groups.end(), [](const Group& a, const Group& b) {
    return a.box.x != b.box.x ? a.box.x < b.box.x : a.box.y < b.box.y;
  });
  return an;
}

std::string status_of(const Analysis& an, const ScoreOptions& o) {
  const std::vector<Group>& groups = an.groups;
  const double max_extent = o.max_extent_cells * o.digit_scale;
  for (const auto& g : groups)
    if (longer_side(g.box) > max_extent) return "overlap";
  if (an.entangled) return "overlap";
  if (groups.empty()) return "no_digits";
  if (groups.size() == 1) return "overlap";
  if (groups.size() > 2) return "extra_blobs";
  if (box_separation(groups[0].box, groups[1].box) < o.min_separation_cells * o.digit_scale) return "overlap";
  return "ok";
}

cv::Mat group_mask(const cv::Mat& labels, const std::vector<int>& comps) {
  cv::Mat m = cv::Mat::zeros(labels.size(), CV_8U);
  for (int y = 0; y < labels.rows; ++y) {
    const int* l = labels.ptr<int>(y);
    uint8_t* d = m.ptr<uint8_t>(y);
    for (int x = 0; x < labels.cols; ++x)
      if (l[x] > 0 && std::find(comps.begin(), comps.end(), l[x]) != comps.end()) d[x] = 255;
  }
  return m;
}

cv::Mat cell_from_groups(const cv::Mat& gray, const Analysis& an, size_t index, const ScoreOptions& o) {
  const Group& g = an.groups.at(index);
  std::vector<int> others;
  for (size_t k = 0; k < an.groups.size(); ++k)
    if (k != index) others.insert(others.end(), an.groups[k].comps.begin(), an.groups[k].comps.end());
  const cv::Mat own = group_mask(an.labels, g.comps);
  const cv::Mat kernel = cv::getStructuringElement(cv::MORPH_ELLIPSE, cv::Size(5, 5));
  cv::Mat keep, near_others;
  cv::dilate(own, keep, kernel);
  if (!others.empty()) {
    cv::dilate(group_mask(an.labels, others), near_others, kernel);
    keep &= ~near_others;
    keep |= own;
  }
  cv::Mat digit = cv::Mat::zeros(gray.size(), CV_8U);
  gray.copyTo(digit, keep);
  const cv::Moments m = cv::moments(digit);
  double cx = g.box.x + 0.5 * g.box.width - 0.5, cy = g.box.y + 0.5 * g.box.height - 0.5;
  if (m.m00 > 0) {
    cx = m.m10 / m.m00;
    cy = m.m01 / m.m00;
  }
  const double scale = std::max(o.digit_scale, longer_side(g.box) / kSheetDigitExtent);
  const int side = std::max(kDigitCell, int(std::lround(kDigitCell * scale)));
  const double half = (kCellCentroid + 0.5) * side / kDigitCell;
  const int x0 = int(std::lround(cx + 0.5 - half)), y0 = int(std::lround(cy + 0.5 - half));
  cv::Mat window = cv::Mat::zeros(side, side, CV_8U);
  const cv::Rect src = cv::Rect(x0, y0, side, side) & cv::Rect(0, 0, gray.cols, gray.rows);
  if (src.area() > 0) digit(src).copyTo(window(cv::Rect(src.x - x0, src.y - y0, src.width, src.height)));
  cv::Mat cell;
  cv::resize(window, cell, cv::Size(kDigitCell, kDigitCell), 0, 0, cv::INTER_AREA);
  return cell;
}

std::vector<Blob> to_blobs(const std::vector<Group>& groups) {
  std::vector<Blob> out;
  for (const auto& g : groups) out.push_back({g.box, g.area, -1});
  return out;
}

}  // namespace

std::vector<cv::Mat> split_contact_sheet(const cv::Mat& sheet_in) {
  const cv::Mat sheet = to_gray8(sheet_in);
  const int h = sheet.rows, w = sheet.cols;
  if (h < 5 || w < 5) return {};
  auto row_is_sep = [&](int y) {
    const uint8_t* p = sheet.ptr<uint8_t>(y);
    return std::all_of(p, p + w, [](uint8_t v) { return v == kSheetBorderGray; });
  };
  auto col_is_sep = [&](int x) {
    for (int y = 0; y < h; ++y)
      if (sheet.at<uint8_t>(y, x) != kSheetBorderGray) return false;
    return true;
  };
  if (!row_is_sep(0) || !row_is_sep(1) || !row_is_sep(h - 1) || !row_is_sep(h - 2) || !col_is_sep(0) || !col_is_sep(1) ||
      !col_is_sep(w - 1) || !col_is_sep(w - 2))
    return {};
  std::vector<bool> rs(static_cast<size_t>(h)), cs(static_cast<size_t>(w));
  for (int y = 0; y < h; ++y) rs[y] = row_is_sep(y);
  for (int x = 0; x < w; ++x) cs[x] = col_is_sep(x);
  const auto rr = runs(rs), cr = runs(cs);
  if (rr.empty() || cr.empty()) return {};
  // Every tile has the frame's size; anything else is not a sheet.
  for (const auto& r : rr)
    if (r.second != rr.front().second) return {};
  std::vector<cv::Mat> frames;
  for (const auto& c : cr)
    if (c.second != cr.front().second) return {};
  for (const auto& r : rr)
    for (const auto& c : cr) {
      const cv::Mat tile = sheet(cv::Rect(c.first, r.first, c.second, r.second));
      if (cv::countNonZero(tile != kSheetBorderGray) == 0) continue;
      frames.push_back(tile.clone());
    }
  return frames;
}

std::vector<cv::Mat> read_frames_gray(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw std::runtime_error("'" + path + "' does not exist");
  std::vector<cv::Mat> frames;
  if (fs::is_directory(path, ec)) {
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(path, ec))
      if (e.is_regular_file() && is_image_ext(lower_ext(e.path()))) files.push_back(e.path());
    if (ec) throw std::runtime_error("cannot list directory '" + path + "': " + ec.message());
    std::sort(files.begin(), files.end());
    for (const auto& f : files) {
      cv::Mat m = cv::imread(f.string(), cv::IMREAD_GRAYSCALE);
      if (m.empty()) throw std::runtime_error("cannot read frame '" + f.string() + "' as an image");
      frames.push_back(m);
    }
    if (frames.empty()) throw std::runtime_error("directory '" + path + "' holds no image frames (.png, .jpg, ...)");
    return frames;
  }
  if (is_image_ext(lower_ext(path))) {
    cv::Mat m = cv::imread(path, cv::IMREAD_GRAYSCALE);
    if (m.empty()) throw std::runtime_error("cannot read '" + path + "' as an image");
    frames = split_contact_sheet(m);
    if (frames.empty()) frames.push_back(m);
    return frames;
  }
  cv::VideoCapture cap(path);
  if (!cap.isOpened()) throw std::runtime_error("cannot open '" + path + "' as a video (OpenCV VideoCapture)");
  cv::Mat m;
  while (cap.read(m) && !m.empty()) frames.push_back(to_gray8(m).clone());
  if (frames.empty()) throw std::runtime_error("video '" + path + "' holds no frames");
  return frames;
}

std::vector<Blob> find_digit_blobs(const cv::Mat& gray, const ScoreOptions& o, std::string* status) {
  const Analysis an = analyse(gray, o);
  if (status) *status = status_of(an, o);
  return to_blobs(an.groups);
}

cv::Mat blob_to_cell(const cv::Mat& gray, const std::vector<Blob>& blobs, size_t index, const ScoreOptions& o) {
  // Recomputes the analysis so that the masks match; `blobs` must come from find_digit_blobs.
  const Analysis an = analyse(gray, o);
  if (an.groups.size() != blobs.size()) throw std::invalid_argument("blob_to_cell: blobs do not belong to this frame");
  return cell_from_groups(gray, an, index, o);
}

FrameResult score_frame(const cv::Mat& frame, int a, int b, const DigitClassifier& clf, const ScoreOptions& o) {
  const cv::Mat gray = to_gray8(frame);
  const Analysis an = analyse(gray, o);
  FrameResult r;
  r.status = status_of(an, o);
  r.blobs = to_blobs(an.groups);
  r.scored = r.status != "overlap";
  if (r.status == "ok" || r.status == "extra_blobs") {
    std::vector<cv::Mat> cells;
    for (size_t k = 0; k < an.groups.size(); ++k) cells.push_back(cell_from_groups(gray, an, k, o));
    r.predicted = clf.predict(cells);
    for (size_t k = 0; k < r.blobs.size(); ++k) r.blobs[k].label = r.predicted[k];
  }
  if (r.status == "ok") {
    std::array<int, 2> want{a, b}, got{r.predicted[0], r.predicted[1]};
    std::sort(want.begin(), want.end());
    std::sort(got.begin(), got.end());
    r.correct = want == got;
  }
  return r;
}

DigitScore score_frames(const std::vector<cv::Mat>& frames, int a, int b, const DigitClassifier& clf, const ScoreOptions& o) {
  if (a < 0 || a > 9 || b < 0 || b > 9)
    throw std::invalid_argument("labels must be digits 0-9, got " + std::to_string(a) + "," + std::to_string(b));
  if (clf.empty()) throw std::invalid_argument("score_frames: the classifier is not trained");
  DigitScore s;
  s.labels = {a, b};
  s.frames = int(frames.size());
  s.per_frame.resize(frames.size());
  for (size_t t = 0; t < frames.size(); ++t) {
    s.per_frame[t] = score_frame(frames[t], a, b, clf, o);
    s.per_frame[t].frame = int(t);
  }
  for (const auto& f : s.per_frame) {
    s.overlap_frames += !f.scored;
    s.scored_frames += f.scored;
    s.correct_frames += f.correct;
  }
  s.fraction = s.scored_frames ? double(s.correct_frames) / s.scored_frames : std::numeric_limits<double>::quiet_NaN();
  return s;
}

DigitScore score_frames(const uint8_t* frames, int t, int h, int w, int c, int a, int b, const DigitClassifier& clf,
                        const ScoreOptions& o) {
  if (t < 0 || h <= 0 || w <= 0 || (c != 1 && c != 3))
    throw std::invalid_argument("score_frames: bad video dimensions T=" + std::to_string(t) + " H=" + std::to_string(h) +
                                " W=" + std::to_string(w) + " C=" + std::to_string(c) + " (C must be 1 or 3)");
  std::vector<cv::Mat> mats;
  const size_t fs = size_t(h) * w * c;
  for (int i = 0; i < t; ++i) {
    cv::Mat m(h, w, c == 1 ? CV_8UC1 : CV_8UC3, const_cast<uint8_t*>(frames + i * fs));
    cv::Mat g;
    if (c == 3) {
      cv::cvtColor(m, g, cv::COLOR_RGB2GRAY);
    } else {
      g = m;
    }
    mats.push_back(g);
  }
  return score_frames(mats, a, b, clf, o);
}

DigitScore score_frames_float(const float* frames, int t, int h, int w, int c, int a, int b, const DigitClassifier& clf,
                              const ScoreOptions& o) {
  if (t < 0 || h <= 0 || w <= 0 || c <= 0)
    throw std::invalid_argument("score_frames_float: bad video dimensions");
  const size_t n = size_t(t) * h * w * c;
  std::vector<uint8_t> u8(n);
  for (size_t i = 0; i < n; ++i) u8[i] = uint8_t(to_u8_value(frames[i]));
  return score_frames(u8.data(), t, h, w, c, a, b, clf, o);
}

}  // namespace ditgen::eval
