#pragma once
// Common machinery of the sparse methods: spec keys with defaults, the token layout, the
// dense-to-sparse schedule (dense_steps, dense_layers, auto), map caching, density accounting
// and report_json(). A method supplies its mask (static methods) or its whole sparse pass
// (dynamic methods).
#include <map>
#include <nlohmann/json.hpp>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "attention/backend.h"
#include "attention/mask/mask.h"
#include "attention/mask/reorder.h"
#include "attention/sparse/residual.h"
#include "attention/sparse/schedule.h"
#include "attention/spec.h"

namespace ditgen::attn {

// Declared keys of one method, read in declaration order; spec() prints them all.
class KeySet {
 public:
  KeySet(std::string method, const AttnSpec& spec) : method_(std::move(method)), spec_(spec) {}
  std::string str(const std::string& key, const std::string& def);
  // One of `choices`.
  std::string choice(const std::string& key, const std::string& def, const std::vector<std::string>& choices);
  int integer(const std::string& key, int def, int lo, int hi);
  double real(const std::string& key, double def, double lo, double hi);
  bool flag(const std::string& key, bool def);  // 0/1, false/true, off/on
  // Throws naming every key the user gave that was never declared, listing the valid keys.
  void finish() const;
  // "name:key=value,..." with every declared key.
  std::string spec_string() const;
  const std::string& method() const { return method_; }

 private:
  [[noreturn]] void bad(const std::string& key, const std::string& value, const std::string& why) const;
  const std::string* given(const std::string& key);
  std::string method_;
  AttnSpec spec_;
  std::vector<std::pair<std::string, std::string>> resolved_;
};

// Defaults of the common keys for one method.
struct CommonDefaults {
  int block = 64;
  std::string layout = "frame";
  std::string tile = "4x4x4";
  std::string dense_steps = "0";
  int dense_layers = 0;
};

struct CommonOptions {
  int block = 64;
  std::string layout = "frame";
  TileShape tile;
  DenseSchedule schedule;
  Isa isa = Isa::Auto;  // kernel path of every pass of the method
};
// Reads block, layout, tile, dense_steps, dense_layers, auto_tol, auto_rows, refresh, isa;
// `run_isa` (the run's --isa) is the default of isa.
CommonOptions read_common(KeySet& keys, const CommonDefaults& d, Isa run_isa);
// The `isa` key: a kernel path (auto, portable, avx2, avx512, avx512bf16) this CPU can run;
// defaults to `run_isa`. Throws naming the value when it is unknown or unsupported here.
Isa read_isa(KeySet& keys, Isa run_isa);

// Attention of selected query rows of one head (double accumulation), under `map`
// (nullptr = dense): out is rows.size() x Dh. q, k, v point at that head's (N, Dh) slices.
void rows_attention(const float* q, const float* k, const float* v, int64_t tokens, int head_dim,
                    const BlockMap* map, int map_index, const std::vector<int64_t>& rows, float* out);

// Up to `count` distinct rows of 0..tokens-1, sorted, reproducible from `seed`.
std::vector<int64_t> sample_rows(int64_t tokens, int count, uint64_t seed, int64_t limit = -1);

class SparseBackend : public AttentionBackend {
 public:
  // The kernel path is common.isa (read_common defaults it to opt.isa); opt gives the threads.
  SparseBackend(std::string method, const CommonOptions& common, KernelOptions opt);
  void attend(const AttentionInputs& in, float* out, const AttentionContext& ctx) final;
  std::string spec() const override { return spec_; }
  double last_density() const override { return last_density_; }
  TokenLayout layout(int tp, int hp, int wp) const override;
  std::string report_json() const override;
  bool last_allows(int head, int64_t q, int64_t k) const override;
  // The residuals of refresh=K: one (B*NH, N, Dh) buffer per layer that is not always dense.
  int64_t state_bytes(int64_t tokens, int batch, int heads, int head_dim, int num_layers) const override;

  const std::string& method() const { return method_; }
  // Set once by the factory: the spec with every key spelled out.
  void set_spec_string(std::string s) { spec_ = std::move(s); }
  const CommonOptions& common() const { return common_; }
  // The maps the method uses on this layout (static methods), or its candidate masks
  // (dynamic methods), named, for `ditgen masks`.
  virtual std::vector<std::pair<std::string, BlockMap>> preview(const TokenLayout& layout);
  // Per-layer step at which dense_steps=auto switched to sparse (-1: not yet).
  const std::vector<int>& auto_switch_steps() const { return auto_.switch_steps(); }

 protected:
  // Static methods: the map for this layout, with num_maps >= 1 and head_map over NH or B*NH.
  virtual BlockMap build_map(const TokenLayout& layout);
  virtual bool is_static() const { return true; }
  // One sparse pass; returns the pair density it computed. Default: the cached static map.
  virtual double sparse_attend(const AttentionInputs& in, float* out, const AttentionContext& ctx);
  // Method-specific entries of report_json().
  virtual void report(nlohmann::json& j) const {}
  const BlockMap& static_map(const TokenLayout& layout);
  // Records what the last sparse pass computed, for last_allows(): the map it ran (it must
  // outlive the next pass) and, per head, the kernel position of each engine position (empty
  // vector: the engine's order). Heads beyond the list reuse it cyclically.
  void set_last_pass(const BlockMap* map, std::vector<std::vector<int32_t>> kernel_pos = {});
  const KernelOptions& kernel_options() const { return opt_; }

 private:
  void dense_pass(const AttentionInputs& in, float* out);
  double auto_estimate(const AttentionInputs& in, const float* dense_out, const AttentionContext& ctx);

  std::string method_, spec_;
  CommonOptions common_;
  KernelOptions opt_;
  MapCache cache_;
  BlockMap dense_map_;
  AutoSwitch auto_;
  ResidualCache residual_;
  std::vector<float> scratch_;
  double last_density_ = 1.0;
  const BlockMap* last_map_ = nullptr;  // nullptr: the last pass was dense
  std::vector<std::vector<int32_t>> last_pos_;
  // Accounting.
  int64_t calls_ = 0, dense_calls_ = 0;
  double sparse_pairs_ = 0, all_pairs_ = 0;  // weighted by heads, over all calls
  std::vector<double> layer_density_;        // last density per layer
  double attend_seconds_ = 0;
};

}  // namespace ditgen::attn
