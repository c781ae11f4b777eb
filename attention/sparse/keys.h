#pragma once
// Spec keys of the sparse methods: each method declares its keys with defaults and ranges, in
// order; spec() prints them all. The keys every method shares (block, layout, tile, the
// dense-to-sparse schedule, isa) are read by read_common.
#include <string>
#include <utility>
#include <vector>

#include "attention/kernel/kernel.h"
#include "attention/mask/reorder.h"
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
  // Replaces the resolved value of a declared key (a value a file fixed), or drops the key
  // from spec() (one a file makes moot); throws std::logic_error for an undeclared key.
  void set(const std::string& key, std::string value);
  void drop(const std::string& key);
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
  // fallback=dense: a run whose plan computes as many blocks as dense (anchors twice) attends
  // densely throughout; fallback=none runs the plan as written.
  bool fallback_dense = true;
  Isa isa = Isa::Auto;  // kernel path of every pass of the method
};
// Reads block, layout, tile, dense_steps, dense_layers, auto_tol, auto_rows, refresh, fallback, isa;
// `run_isa` (the run's --isa) is the default of isa.
CommonOptions read_common(KeySet& keys, const CommonDefaults& d, Isa run_isa);
// The `isa` key: a kernel path (auto, portable, avx2, avx512, avx512bf16) this CPU can run;
// defaults to `run_isa`. Throws naming the value when it is unknown or unsupported here.
Isa read_isa(KeySet& keys, Isa run_isa);

}  // namespace ditgen::attn
