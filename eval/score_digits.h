#pragma once
// Scoring generated Moving-MNIST videos with the digit classifier: in each frame, find the
// two digits, classify them, and count the frames whose two labels are the requested pair.
//
// Finding the digits (per frame, on the 8-bit grayscale frame):
//  1. Pixels brighter than `threshold` form 8-connected components; components smaller
//     than `min_area_cells`·s² pixels are noise and ignored (s = `digit_scale`, the size of
//     a sheet pixel in the frame: 28/20 for the shipped data, tools/train/data.py).
//  2. While there are more than two groups, the two closest groups (gap between bounding
//     boxes) are merged, provided the merged box still fits a single digit
//     (at most `max_extent_cells`·s on its longer side): broken strokes rejoin their digit.
//  3. Groups whose longer side is under `min_extent_cells`·s are specks and dropped. Groups
//     shorter than `min_height_cells`·s (sheet digits are at least ~9 pixels tall) are
//     fragments: a fragment within `fragment_gap_cells`·s of a digit is a stroke that could
//     not be joined to one without exceeding a digit's size, i.e. entangled digits (step 4);
//     an isolated fragment is dropped.
//  4. A group longer than `max_extent_cells`·s on a side cannot be one digit: the digits
//     overlap. Exactly one group also means the digits overlap (or one hides the other).
//     So does a fragment next to a digit (step 3). Two groups whose bounding boxes intersect (separation under `min_separation_cells`·s)
//     are entangled digits whose strokes may have been given to the wrong group: overlap
//     too. Such frames are "overlap" frames: counted apart and excluded from the fraction.
//     (On clips rendered like the training data from hold-out digits, about half the frames
//     are overlap frames and 98.1% of the others are read correctly.)
//  5. No group at all: "no_digits". More than two groups: "extra_blobs". Both are scored
//     and wrong. Exactly two groups: "ok", each group is classified, and the frame is
//     correct when the multiset of the two labels equals the requested one.
// Each group is turned into a 20×20 sheet cell the way the training clips were made, in
// reverse: its pixels (the group's components dilated by 2 pixels, other digits masked
// out, grayscale kept) are cut out in a window of 20·s' pixels placed so that the group's
// intensity centroid lands where the sheet's digits have theirs (9.85, 9.85), and the
// window is area-resampled to 20×20. s' = s unless the group is larger than a sheet digit
// (16 cells) would be at scale s, in which case the window grows to fit it.
#include <opencv2/core.hpp>
#include <array>
#include <string>
#include <vector>

#include "eval/digits.h"

namespace ditgen::eval {

struct ScoreOptions {
  double digit_scale = 28.0 / 20.0;  // frame pixels per sheet pixel (s)
  int threshold = 80;                // 0..255: ink
  double min_area_cells = 3.0;       // in sheet pixels² (× s² in the frame)
  double min_extent_cells = 6.0;     // shorter on the longer side: a speck, dropped
  double min_height_cells = 8.5;     // shorter than this: a fragment, not a whole digit
  double fragment_gap_cells = 3.0;   // a fragment this close to a digit: entangled digits
  double max_extent_cells = 19.0;    // longer side of the largest single digit, sheet pixels
  // Two groups whose bounding boxes are separated by less than this (sheet pixels; the
  // separation is the larger of the horizontal and vertical gaps, negative when the boxes
  // intersect) are entangled digits: counted as overlap.
  double min_separation_cells = 0.0;
};

struct Blob {
  cv::Rect box;       // bounding box in the frame
  int area = 0;       // pixels above threshold
  int label = -1;     // predicted class (-1: not classified)
};

struct FrameResult {
  int frame = 0;
  std::string status;  // "ok", "overlap", "no_digits", "extra_blobs"
  std::vector<Blob> blobs;  // the groups found, left to right
  std::vector<int> predicted;  // labels of the blobs that were classified, left to right
  bool scored = false;   // counted in the denominator (status != "overlap")
  bool correct = false;  // scored and the two labels match the request
};

struct DigitScore {
  std::array<int, 2> labels{};  // the requested pair
  int frames = 0;
  int scored_frames = 0;   // frames - overlap_frames
  int correct_frames = 0;
  int overlap_frames = 0;
  double fraction = 0;     // correct / scored; NaN when no frame is scored
  std::vector<FrameResult> per_frame;
};

// Reads 8-bit grayscale frames from a video file (anything cv::VideoCapture opens: .mp4,
// .mkv, ...), a directory of image files (sorted by name; .png/.jpg/.jpeg/.bmp/.pgm/.tif),
// or a single image. A single PNG written by `ditgen generate` for T > 1 is a contact sheet
// (frames in a grid separated by 2-pixel borders of gray 96, see io/video.cpp); it is
// recognised by its border and split into frames (tiles that are entirely border gray are
// the sheet's unused cells and skipped). Throws std::runtime_error naming the path when it
// is missing or unreadable or holds no frame.
std::vector<cv::Mat> read_frames_gray(const std::string& path);

// Splits a contact sheet (see above) into its frames; returns {} when `sheet` is not one.
std::vector<cv::Mat> split_contact_sheet(const cv::Mat& sheet);

// Finds the digit groups of one 8-bit grayscale frame (steps 1 to 4 above; labels unset)
// and the status that follows from them alone.
std::vector<Blob> find_digit_blobs(const cv::Mat& gray, const ScoreOptions& o, std::string* status = nullptr);

// The 20×20 sheet cell of blob `index` of `blobs` in `gray` (see above).
cv::Mat blob_to_cell(const cv::Mat& gray, const std::vector<Blob>& blobs, size_t index, const ScoreOptions& o);

// Scores one frame.
FrameResult score_frame(const cv::Mat& gray, int a, int b, const DigitClassifier& clf, const ScoreOptions& o = {});

// Scores frames (8-bit, 1 or 3 channels; 3 channels are BGR as OpenCV reads them).
DigitScore score_frames(const std::vector<cv::Mat>& frames, int a, int b, const DigitClassifier& clf,
                        const ScoreOptions& o = {});
// Scores a video held as uint8 x[T][H][W][C] (C = 1, or 3 as RGB).
DigitScore score_frames(const uint8_t* frames, int t, int h, int w, int c, int a, int b, const DigitClassifier& clf,
                        const ScoreOptions& o = {});
// Scores the engine's float output x[T][H][W][C] in [-1, 1] (turned into 8-bit frames with
// the rounding of eval::to_u8_value, as the video writer does).
DigitScore score_frames_float(const float* frames, int t, int h, int w, int c, int a, int b, const DigitClassifier& clf,
                              const ScoreOptions& o = {});

}  // namespace ditgen::eval
