#pragma once
// Sliding Tile Attention's per-head window search (FastVideo's STA_searching / STA_tuning):
// a dense calibration run in the tile layout computes, at every step, layer and head, the
// attention output under each candidate window as well as the exact one; the tuned strategy
// gives each (step, layer, head) the candidate of least output error, averaged over the run's
// conditional and unconditional batches (STA_tuning_cfg pools both). The candidates should cost
// the same (`sta_windows` lists every window of a given tile volume), since the error falls
// with the window's size. `--attn window:calib=FILE` runs the strategy; its dense_steps play
// the part of STA's skip_time_steps.
#include <string>
#include <vector>

#include "attention/backend.h"
#include "attention/mask/reorder.h"
#include "attention/mask/window.h"

namespace ditgen::attn {

struct StaCalibration {
  int tp = 0, hp = 0, wp = 0;  // the token grid of the calibration run
  int block = 64, steps = 0, layers = 0, heads = 0;
  TileShape tile;
  bool sink = true;
  std::vector<TileShape> windows;  // the candidates, in tiles
  // choice[(step * layers + layer) * heads + head]: index into `windows`.
  std::vector<int> choice;
  // error[((step * layers + layer) * heads + head) * windows + w]: mean relative L2 error of
  // the head's output under window w against the exact output.
  std::vector<double> error;

  int window_of(int step, int layer, int head) const {
    return choice[(size_t(step) * size_t(layers) + size_t(layer)) * size_t(heads) + size_t(head)];
  }
  void write(const std::string& path) const;  // JSON
  static StaCalibration read(const std::string& path);  // throws std::runtime_error naming the problem
};

// Every window (kt, kh, kw) of a grid of (nt, nh, nw) tiles, 1 <= k <= tiles on each axis,
// covering exactly `volume` tiles, ordered by kt, then kh. Empty when there is none.
std::vector<TileShape> sta_windows(int volume, int nt, int nh, int nw);

// Calibration backend: dense attention (the run's output is the dense one, as STA_searching's)
// plus, per call, each candidate window's output and its error per head.
class StaCalibrator : public AttentionBackend {
 public:
  // `windows` empty: every window of `volume` tiles on the run's grid (sta_windows).
  StaCalibrator(TileShape tile, bool sink, int block, std::vector<TileShape> windows, int volume, KernelOptions opt = {});
  AttendReport attend(const AttentionInputs& in, float* out, const AttentionContext& ctx) override;
  std::string spec() const override;
  TokenLayout layout(int tp, int hp, int wp) const override;
  std::string report_json() const override;
  // The strategy from the errors gathered so far; throws if no call was recorded.
  StaCalibration result() const;
  double search_seconds() const { return search_seconds_; }

 private:
  void start(const TokenLayout& layout, const AttentionInputs& in, const AttentionContext& ctx);
  TileShape tile_;
  bool sink_;
  int block_, volume_;
  std::vector<TileShape> windows_;
  AttentionKernel kernel_;
  BlockMap dense_;
  std::vector<BlockMap> maps_;  // one per candidate, for the grid below
  std::vector<int32_t> maps_order_;
  int tp_ = 0, hp_ = 0, wp_ = 0, heads_ = 0, layers_ = 0, steps_ = 0;
  std::vector<double> err_sum_;  // as StaCalibration::error, summed
  std::vector<int> err_count_;   // per (step, layer, head)
  std::vector<float> scratch_;
  double search_seconds_ = 0;
  int64_t calls_recorded_ = 0;
};

// The least-error candidate of each (step, layer, head): errors laid out as
// StaCalibration::error; ties go to the earlier candidate.
std::vector<int> sta_select(const std::vector<double>& error, int num_windows);

}  // namespace ditgen::attn
