#pragma once
// What a sparse backend computed over a run, for report_json(): calls, dense calls, mean pair
// density (over all calls and over the sparse ones), per-layer density, time in attend().
#include <cstdint>
#include <nlohmann/json.hpp>
#include <vector>

namespace ditgen::attn {

class Accounting {
 public:
  // One attend() of `layer` (num_layers in the run) that computed `density` of the pairs.
  void record(int layer, int num_layers, double density, bool dense, double seconds);
  void to_json(nlohmann::json& j) const;

 private:
  int64_t calls_ = 0, dense_calls_ = 0;
  double sparse_pairs_ = 0, all_pairs_ = 0;  // weighted by heads, over all calls
  double sparse_only_ = 0;                   // density summed over the calls not run dense
  double last_density_ = 1.0;
  std::vector<double> layer_density_;  // last density per layer
  double seconds_ = 0;
};

}  // namespace ditgen::attn
