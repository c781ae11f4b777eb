// `radial` and `radial3d` backends.
#include <memory>

#include "attention/methods/methods.h"
#include "attention/mask/radial.h"
#include "attention/sparse/sparse_backend.h"

namespace ditgen::attn {

namespace {

class RadialBackend : public SparseBackend {
 public:
  RadialBackend(const CommonOptions& c, const RadialRule& rule, bool shrink, KernelOptions opt)
      : SparseBackend("radial", c, opt), rule_(rule), shrink_(shrink) {}

 protected:
  BlockMap build_map(const TokenLayout& layout) override {
    if (shrink_) {
      RadialGridMask mask(layout, rule_);
      // Frame-major order: the grid is the map.
      if (layout.is_identity()) return grid_to_map(mask.grid(), layout.tokens(), rule_.block);
      return compile_mask(mask, layout.tokens(), common().block);
    }
    RadialTokenMask mask(layout, rule_);
    return compile_mask(mask, layout.tokens(), common().block);
  }
  void report(nlohmann::json& j) const override {
    j["decay"] = rule_.decay;
    j["sink"] = rule_.sink;
    j["shrink"] = shrink_;
  }

 private:
  RadialRule rule_;
  bool shrink_;
};

class Radial3dBackend : public SparseBackend {
 public:
  Radial3dBackend(const CommonOptions& c, const Radial3dRule& rule, KernelOptions opt)
      : SparseBackend("radial3d", c, opt), rule_(rule) {}

 protected:
  BlockMap build_map(const TokenLayout& layout) override {
    Radial3dMask mask(layout, rule_);
    return compile_mask(mask, layout.tokens(), common().block);
  }

 private:
  Radial3dRule rule_;
};

}  // namespace

std::unique_ptr<AttentionBackend> make_radial(const AttnSpec& spec, const KernelOptions& opt) {
  KeySet keys("radial", spec);
  RadialRule rule;
  rule.decay = keys.real("decay", 0.2, 1e-6, 1e6);
  rule.sink = keys.flag("sink", true);
  const bool shrink = keys.flag("shrink", true);
  // Published Wan 1x setting: 128 blocks, 12 of 50 steps and the first block dense.
  const CommonOptions c = read_common(keys, CommonDefaults{128, "frame", "4x4x4", "0.25", 1}, opt.isa);
  keys.finish();
  rule.block = c.block;
  auto b = std::make_unique<RadialBackend>(c, rule, shrink, opt);
  b->set_spec_string(keys.spec_string());
  return b;
}

std::unique_ptr<AttentionBackend> make_radial3d(const AttnSpec& spec, const KernelOptions& opt) {
  KeySet keys("radial3d", spec);
  Radial3dRule rule;
  rule.decay = keys.real("decay", 1.0, 1e-6, 1e6);
  rule.sink = keys.flag("sink", true);
  const CommonOptions c = read_common(keys, CommonDefaults{64, "tile", "1x8x8", "0.25", 1}, opt.isa);
  keys.finish();
  rule.tile = c.tile;
  auto b = std::make_unique<Radial3dBackend>(c, rule, opt);
  b->set_spec_string(keys.spec_string());
  return b;
}

}  // namespace ditgen::attn
