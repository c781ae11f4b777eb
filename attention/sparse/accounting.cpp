#include "attention/sparse/accounting.h"

namespace ditgen::attn {

void Accounting::record(int layer, int num_layers, double density, bool dense, double seconds) {
  if (int(layer_density_.size()) < num_layers) layer_density_.resize(size_t(num_layers), 1.0);
  layer_density_[size_t(layer)] = density;
  last_density_ = density;
  ++calls_;
  dense_calls_ += dense;
  sparse_pairs_ += density;
  all_pairs_ += 1.0;
  if (!dense) sparse_only_ += density;
  seconds_ += seconds;
}

void Accounting::to_json(nlohmann::json& j) const {
  j["calls"] = calls_;
  j["dense_calls"] = dense_calls_;
  j["mean_pair_density"] = all_pairs_ > 0 ? sparse_pairs_ / all_pairs_ : 1.0;
  j["mean_sparse_density"] = calls_ > dense_calls_ ? sparse_only_ / double(calls_ - dense_calls_) : 1.0;
  j["last_density"] = last_density_;
  j["layer_density"] = layer_density_;
  j["attention_seconds"] = seconds_;
}

}  // namespace ditgen::attn
