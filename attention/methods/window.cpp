#include "attention/mask/window.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <stdexcept>

#include "attention/methods/methods.h"
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

 protected:
  bool is_static() const override { return !summary_; }
  BlockMap build_map(const TokenLayout& layout) override {
    WindowMask w(layout, rule_);
    if (!summary_) return compile_mask(w, layout.tokens(), common().block);
    // The tokens' queries against the tokens' keys followed by one summary key per tile.
    WindowSummaryMask s(w, layout.tokens());
    return compile_mask(s, layout.tokens(), layout.tokens() + w.num_tiles(), common().block);
  }
  AttendReport sparse_attend(const AttentionInputs& in, float* out, const AttentionContext& ctx) override {
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
    j["window"] = rule_.window.str();
    j["summary_tokens"] = summary_;
  }

 private:
  WindowRule rule_;
  bool summary_;
  std::vector<int32_t> tile_layout_;
  std::vector<int> tile_of_, tile_count_;
  std::vector<float> k2_, v2_;
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
  // Sliding Tile Attention: tile layout, 12 of 50 steps dense, no dense layer.
  const CommonOptions c = read_common(keys, CommonDefaults{64, "tile", "4x4x4", "0.24", 0}, opt.isa);
  keys.finish();
  rule.tile = c.tile;
  auto b = std::make_unique<WindowBackend>(c, rule, summary, opt);
  b->set_spec_string(keys.spec_string());
  return b;
}

}  // namespace ditgen::attn
