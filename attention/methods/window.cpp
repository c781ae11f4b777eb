#include "attention/mask/window.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <stdexcept>

#include "attention/methods/methods.h"
#include "attention/methods/sta.h"
#include "attention/sparse/sparse_backend.h"

namespace ditgen::attn {

WindowMask::WindowMask(const TokenLayout& layout, const WindowRule& rule) : layout_(layout), rule_(rule) {
  if (rule.tile.volume() < 1 || rule.window.volume() < 1) throw std::invalid_argument("window: tile and window must be positive");
  nt_ = (layout.frames() + rule.tile.t - 1) / rule.tile.t;
  nh_ = (layout.height() + rule.tile.h - 1) / rule.tile.h;
  nw_ = (layout.width() + rule.tile.w - 1) / rule.tile.w;
}

int WindowMask::tile_of(int64_t i) const {
  const Coord c = layout_.coord(i);
  return ((c.t / rule_.tile.t) * nh_ + c.h / rule_.tile.h) * nw_ + c.w / rule_.tile.w;
}

bool WindowMask::tile_in_window(int64_t q, int kt, int kh, int kw) const {
  const Coord c = layout_.coord(q);
  auto in = [](int qt, int kt_, int k, int tiles) {
    const int s = window_start(qt, k, tiles);
    return kt_ >= s && kt_ < s + std::min(k, tiles);
  };
  return in(c.t / rule_.tile.t, kt, rule_.window.t, nt_) && in(c.h / rule_.tile.h, kh, rule_.window.h, nh_) &&
         in(c.w / rule_.tile.w, kw, rule_.window.w, nw_);
}

bool WindowMask::allowed(int64_t q, int64_t k) const {
  const Coord ck = layout_.coord(k);
  if (rule_.sink && ck.t == 0) return true;
  return tile_in_window(q, ck.t / rule_.tile.t, ck.h / rule_.tile.h, ck.w / rule_.tile.w);
}

bool WindowSummaryMask::allowed(int64_t q, int64_t k) const {
  if (q >= n_) return k == q;
  if (k < n_) return w_.allowed(q, k);
  const int tile = int(k - n_);
  const int kw = tile % w_.tiles_w(), kh = (tile / w_.tiles_w()) % w_.tiles_h(), kt = tile / (w_.tiles_w() * w_.tiles_h());
  return !w_.tile_in_window(q, kt, kh, kw);
}

namespace {

class WindowBackend : public SparseBackend {
 public:
  WindowBackend(const CommonOptions& c, const WindowRule& rule, bool summary, KernelOptions opt)
      : SparseBackend("window", c, opt), rule_(rule), summary_(summary) {}
  // Per (step, layer, head) windows from an STA search (`ditgen calibrate --method sta`).
  WindowBackend(const CommonOptions& c, std::string path, StaCalibration calib, KernelOptions opt)
      : SparseBackend("window", c, opt), rule_{calib.tile, calib.windows.front(), calib.sink}, summary_(false),
        path_(std::move(path)), calib_(std::move(calib)) {}

  std::vector<std::pair<std::string, BlockMap>> preview(const TokenLayout& layout) override {
    if (path_.empty()) return SparseBackend::preview(layout);
    std::vector<std::pair<std::string, BlockMap>> r;
    for (const auto& w : calib_.windows) r.emplace_back("window_" + w.str(), compile_mask(WindowMask(layout, {rule_.tile, w, rule_.sink}), layout.tokens(), common().block));
    return r;
  }

 protected:
  bool is_static() const override { return !summary_ && path_.empty(); }
  BlockMap build_map(const TokenLayout& layout) override {
    WindowMask w(layout, rule_);
    if (!summary_) return compile_mask(w, layout.tokens(), common().block);
    // The tokens' queries against the tokens' keys followed by one summary key per tile.
    WindowSummaryMask s(w, layout.tokens());
    return compile_mask(s, layout.tokens(), layout.tokens() + w.num_tiles(), common().block);
  }
  AttendReport sparse_attend(const AttentionInputs& in, float* out, const AttentionContext& ctx) override {
    if (!path_.empty()) return searched_attend(in, out, ctx);
    if (!summary_) return SparseBackend::sparse_attend(in, out, ctx);
    const TokenLayout& layout = *in.layout;
    const BlockMap& m = static_map(layout);
    WindowMask w(layout, rule_);
    const int tiles = w.num_tiles();
    const int64_t n = in.tokens, n2 = n + tiles;
    const int dh = in.head_dim, heads = in.batch * in.heads;
    if (tile_of_.size() != size_t(n) || tile_layout_ != layout.order()) {
      tile_layout_ = layout.order();
      tile_of_.resize(size_t(n));
      tile_count_.assign(size_t(tiles), 0);
      for (int64_t i = 0; i < n; ++i) {
        tile_of_[size_t(i)] = w.tile_of(i);
        ++tile_count_[size_t(tile_of_[size_t(i)])];
      }
    }
    // Keys and values: the tokens' followed by the tiles' means; the queries are the tokens'.
    const size_t per_head = size_t(n2) * size_t(dh);
    k2_.assign(per_head * size_t(heads), 0.0f);
    v2_.assign(per_head * size_t(heads), 0.0f);
#pragma omp parallel for schedule(static)
    for (int h = 0; h < heads; ++h) {
      const size_t src = size_t(h) * size_t(n) * size_t(dh), dst = size_t(h) * per_head;
      std::memcpy(&k2_[dst], in.k + src, sizeof(float) * size_t(n) * size_t(dh));
      std::memcpy(&v2_[dst], in.v + src, sizeof(float) * size_t(n) * size_t(dh));
      float* ks = &k2_[dst + size_t(n) * size_t(dh)];
      float* vs = &v2_[dst + size_t(n) * size_t(dh)];
      for (int64_t i = 0; i < n; ++i) {
        const size_t t = size_t(tile_of_[size_t(i)]) * size_t(dh);
        for (int c = 0; c < dh; ++c) {
          ks[t + size_t(c)] += in.k[src + size_t(i) * size_t(dh) + size_t(c)];
          vs[t + size_t(c)] += in.v[src + size_t(i) * size_t(dh) + size_t(c)];
        }
      }
      for (int t = 0; t < tiles; ++t) {
        const float inv = tile_count_[size_t(t)] ? 1.0f / float(tile_count_[size_t(t)]) : 0.0f;
        for (int c = 0; c < dh; ++c) ks[size_t(t) * size_t(dh) + size_t(c)] *= inv, vs[size_t(t) * size_t(dh) + size_t(c)] *= inv;
      }
    }
    AttentionCall call = self_attention(in.q, k2_.data(), v2_.data(), out, heads, n, dh, &m);
    call.kv_len = n2;
    kernel().run(call);
    AttendReport r;
    r.map = &m;
    // Pairs computed, relative to the N x N dense problem.
    r.density = m.pair_density() * double(n2) / double(n);
    return r;
  }
  void report(nlohmann::json& j) const override {
    j["tile"] = rule_.tile.str();
    j["summary_tokens"] = summary_;
    if (path_.empty()) {
      j["window"] = rule_.window.str();
      return;
    }
    j["calibration"] = path_;
    // Share of the calibrated (step, layer, head) cells each window was chosen for.
    nlohmann::json use = nlohmann::json::object();
    for (size_t w = 0; w < calib_.windows.size(); ++w)
      use[calib_.windows[w].str()] = double(std::count(calib_.choice.begin(), calib_.choice.end(), int(w))) / double(calib_.choice.size());
    j["window_share"] = use;
  }

 private:
  AttendReport searched_attend(const AttentionInputs& in, float* out, const AttentionContext& ctx) {
    const TokenLayout& l = *in.layout;
    if (in.heads != calib_.heads || ctx.layer >= calib_.layers)
      throw std::invalid_argument("window: calibration file '" + path_ + "' is for " + std::to_string(calib_.layers) + " layers of " +
                                  std::to_string(calib_.heads) + " heads, the model has " + std::to_string(ctx.num_layers) +
                                  " layers of " + std::to_string(in.heads));
    if (searched_.tokens != in.tokens || searched_order_ != l.order()) {
      std::vector<BlockMap> per;
      for (const auto& w : calib_.windows) per.push_back(compile_mask(WindowMask(l, {rule_.tile, w, rule_.sink}), in.tokens, common().block));
      std::vector<const BlockMap*> ptrs;
      for (const auto& m : per) ptrs.push_back(&m);
      searched_ = stack_maps(ptrs, std::vector<int32_t>(size_t(calib_.heads), 0));
      searched_order_ = l.order();
    }
    // The calibrated step at the same point of the schedule when the run has other steps.
    const int step = int(int64_t(ctx.step) * calib_.steps / std::max(1, ctx.num_steps));
    for (int h = 0; h < calib_.heads; ++h) searched_.head_map[size_t(h)] = calib_.window_of(step, ctx.layer, h);
    kernel().run(self_attention(in.q, in.k, in.v, out, in.batch * in.heads, in.tokens, in.head_dim, &searched_));
    AttendReport r;
    r.map = &searched_;
    r.density = searched_.pair_density();
    return r;
  }

  WindowRule rule_;
  bool summary_;
  std::vector<int32_t> tile_layout_;
  std::vector<int> tile_of_, tile_count_;
  std::vector<float> k2_, v2_;
  std::string path_;  // calibration file; empty: one window for every head
  StaCalibration calib_;
  BlockMap searched_;  // the candidate windows stacked; head_map set per call
  std::vector<int32_t> searched_order_;
};

}  // namespace

std::unique_ptr<AttentionBackend> make_window(const AttnSpec& spec, const KernelOptions& opt) {
  KeySet keys("window", spec);
  WindowRule rule;
  const std::string window = keys.str("window", "3x3x3");
  try {
    rule.window = parse_tile(window);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(std::string("attention method 'window': window: ") + e.what());
  }
  rule.sink = keys.flag("sink", true);
  const bool summary = keys.flag("summary", false);
  const std::string path = keys.str("calib", "");
  // Sliding Tile Attention: tile layout, 12 of 50 steps dense, no dense layer.
  CommonOptions c = read_common(keys, CommonDefaults{64, "tile", "4x4x4", "0.24", 0}, opt.isa);
  keys.finish();
  rule.tile = c.tile;
  if (path.empty()) {
    keys.drop("calib");  // one window for every head
    auto b = std::make_unique<WindowBackend>(c, rule, summary, opt);
    b->set_spec_string(keys.spec_string());
    return b;
  }
  // The search fixed the tile, the sink and the windows: the spec may repeat them, not change them.
  if (spec.params.count("window") || summary)
    throw std::invalid_argument(std::string("attention method 'window': ") + (summary ? "summary=1" : "window=" + window) +
                                " cannot be given with calib=FILE (the file chooses the windows)");
  StaCalibration calib;
  try {
    calib = StaCalibration::read(path);
  } catch (const std::runtime_error& e) {
    throw std::invalid_argument(std::string("attention method 'window': ") + e.what());
  }
  if (spec.params.count("tile") && c.tile.str() != calib.tile.str())
    throw std::invalid_argument("attention method 'window': tile=" + c.tile.str() + " but calibration file '" + path + "' uses tile " + calib.tile.str());
  if (spec.params.count("sink") && rule.sink != calib.sink)
    throw std::invalid_argument("attention method 'window': sink=" + std::string(rule.sink ? "1" : "0") + " but calibration file '" + path +
                                "' uses sink=" + (calib.sink ? "1" : "0"));
  if (c.layout != "tile") throw std::invalid_argument("attention method 'window': calib=FILE needs layout=tile, as the search ran");
  c.tile = calib.tile;
  keys.set("tile", calib.tile.str());
  keys.set("sink", calib.sink ? "1" : "0");
  keys.drop("window");
  auto b = std::make_unique<WindowBackend>(c, path, std::move(calib), opt);
  b->set_spec_string(keys.spec_string());
  return b;
}

}  // namespace ditgen::attn
