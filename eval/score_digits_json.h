#pragma once
// JSON form of a digit score (header-only: the includer links nlohmann_json).
// Schema (documented in eval/README.md):
//   {"labels": [a, b], "frames", "scored_frames", "correct_frames", "fraction" (null when no
//    frame is scored), "overlap_frames", "status_counts": {status: count},
//    "per_frame": [{"frame", "status", "predicted": [..], "correct", "scored",
//                   "blobs": [{"x", "y", "w", "h", "area", "label"}]}]}
#include <nlohmann/json.hpp>
#include <cmath>
#include <map>

#include "eval/score_digits.h"

namespace ditgen::eval {

inline nlohmann::json to_json(const FrameResult& f) {
  nlohmann::json blobs = nlohmann::json::array();
  for (const auto& b : f.blobs)
    blobs.push_back({{"x", b.box.x}, {"y", b.box.y}, {"w", b.box.width}, {"h", b.box.height}, {"area", b.area},
                     {"label", b.label}});
  return {{"frame", f.frame},   {"status", f.status},   {"predicted", f.predicted},
          {"correct", f.correct}, {"scored", f.scored}, {"blobs", blobs}};
}

inline nlohmann::json to_json(const DigitScore& s, bool per_frame = true) {
  std::map<std::string, int> counts;
  for (const auto& f : s.per_frame) ++counts[f.status];
  nlohmann::json j = {{"labels", {s.labels[0], s.labels[1]}},
                      {"frames", s.frames},
                      {"scored_frames", s.scored_frames},
                      {"correct_frames", s.correct_frames},
                      {"fraction", std::isnan(s.fraction) ? nlohmann::json(nullptr) : nlohmann::json(s.fraction)},
                      {"overlap_frames", s.overlap_frames},
                      {"status_counts", counts}};
  if (per_frame) {
    nlohmann::json pf = nlohmann::json::array();
    for (const auto& f : s.per_frame) pf.push_back(to_json(f));
    j["per_frame"] = pf;
  }
  return j;
}

}  // namespace ditgen::eval
