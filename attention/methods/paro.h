#pragma once
// PAROAttention, as far as its public facts go: per (layer, head) one of the six axis orders
// of (t, h, w) and a static block mask, both chosen offline from the exact attention maps of a
// calibration run (`ditgen calibrate`) and stored in a small JSON file.
//
// Calibration: for a random share of query rows of the conditional batch, the exact softmax row
// is summed into key blocks under each of the six orders; per (layer, head, order) this gives
// m[a][b], the mean attention mass that the queries of block a put on key block b (rows sum
// to 1). Mask of an order: each query block keeps the fewest key blocks whose mass reaches
// `mass`, plus its diagonal. The order with the fewest kept blocks wins (PARO's sparsity
// metric; the quantisation metric does not apply to a float32 kernel).
#include <cstdint>
#include <string>
#include <vector>

#include "attention/backend.h"

namespace ditgen::attn {

struct ParoHeadPlan {
  int layer = 0, head = 0;
  std::string order = "thw";         // one of axis_orders()
  std::vector<std::vector<char>> keep;  // nb x nb block grid, in that order
  double density = 1.0;              // kept blocks / nb^2
};

struct ParoCalibration {
  int tp = 0, hp = 0, wp = 0;
  int block = 64, heads = 0, layers = 0;
  double mass = 0.95;
  std::vector<ParoHeadPlan> plans;

  const ParoHeadPlan* find(int layer, int head) const;
  void write(const std::string& path) const;  // JSON
  static ParoCalibration read(const std::string& path);  // throws std::runtime_error naming the problem
};

// Calibration backend: runs dense attention (so the run's output is the dense one) and records
// block-mass statistics on every `every`-th step.
class ParoCalibrator : public AttentionBackend {
 public:
  ParoCalibrator(int block, double mass, double sample, int every, KernelOptions opt = {});
  AttendReport attend(const AttentionInputs& in, float* out, const AttentionContext& ctx) override;
  std::string spec() const override;
  std::string report_json() const override;
  // Chooses orders and masks from the statistics gathered so far.
  ParoCalibration result() const;
  double stats_seconds() const { return stats_seconds_; }

 private:
  int block_, every_;
  double mass_, sample_;
  AttentionKernel kernel_;
  BlockMap dense_;
  int tp_ = 0, hp_ = 0, wp_ = 0, heads_ = 0, layers_ = 0, nb_ = 0;
  // stats_[((layer * heads + head) * 6 + order)] : nb x nb mass sums; counts_ likewise nb.
  std::vector<std::vector<double>> stats_, counts_;
  double stats_seconds_ = 0;
  int64_t calls_recorded_ = 0;
};

// Mask selection from block-mass statistics (row-normalised m, nb x nb): fewest key blocks per
// query block reaching `mass`, plus the diagonal.
std::vector<std::vector<char>> paro_select(const std::vector<double>& m, int nb, double mass);

}  // namespace ditgen::attn
