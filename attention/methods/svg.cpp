// `svg`: Sparse VideoGen (SVG1). Every sparse call profiles a few query rows per head against
// exact attention under a spatial and a temporal mask and runs each head with the better one.
//
// Facts ported (Sparse-VideoGen, svg/models/wan): tokens per frame F, S = N tokens, block B.
//  - profiling spatial mask, on frame-major positions: |i/B - j/B| < (2F)//B, or j < F (sink)
//  - profiling temporal mask: the same mask on the frame/token transpose (position p*T+f holds
//    frame-major f*F+p), i.e. M_t(i, j) = M_s(tr(i), tr(j))
//  - `rows` random query rows from the first `sample_limit`; per (batch, head) the mask with the
//    lower mean squared error against exact attention wins
//  - execution: one mask for all heads, |i - j| <= ceil_B(S (1 - sqrt(1 - density))) or j < F,
//    temporal heads gathered into the transposed order first and scattered back after
//    (`density` is the published `sparsity` argument: the band's share of pairs)
#include <chrono>
#include <cmath>
#include <cstring>
#include <memory>

#include "attention/methods/methods.h"
#include "attention/mask/reorder.h"
#include "attention/sparse/probe.h"
#include "attention/sparse/sparse_backend.h"

namespace ditgen::attn {

namespace {

class SvgBackend : public SparseBackend {
 public:
  SvgBackend(const CommonOptions& c, double density, int rows, int limit, KernelOptions opt)
      : SparseBackend("svg", c, opt), density_(density), rows_(rows), limit_(limit) {}

  std::vector<std::pair<std::string, BlockMap>> preview(const TokenLayout& layout) override {
    const TokenLayout fm(layout.frames(), layout.height(), layout.width());
    return {{"svg_execution", execution_map(fm)}, {"svg_profile_spatial", profile_map(fm)}};
  }

 protected:
  bool is_static() const override { return false; }

  AttendReport sparse_attend(const AttentionInputs& in, float* out, const AttentionContext& ctx) override {
    const auto t0 = std::chrono::steady_clock::now();
    const TokenLayout& l = *in.layout;
    const int64_t n = in.tokens;
    const int dh = in.head_dim, heads = in.batch * in.heads;
    const TokenLayout fm(l.frames(), l.height(), l.width());
    const TokenLayout tr = transpose_layout(l.frames(), l.height(), l.width());
    // Gather indices: engine position of each frame-major / transposed position.
    std::vector<int32_t> idx_fm(static_cast<size_t>(n)), idx_tr(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      idx_fm[size_t(i)] = l.inverse()[size_t(i)];
      idx_tr[size_t(i)] = l.inverse()[size_t(tr.order()[size_t(i)])];
    }
    const size_t per_head = size_t(n) * size_t(dh);
    auto gather = [&](const float* src, float* dst, const std::vector<int32_t>& idx) {
      for (int64_t i = 0; i < n; ++i)
        std::memcpy(dst + size_t(i) * dh, src + size_t(idx[size_t(i)]) * dh, sizeof(float) * size_t(dh));
    };
    for (auto* b : {&fq_, &fk_, &fv_, &tq_, &tk_, &tv_}) b->resize(per_head * size_t(heads));
#pragma omp parallel for schedule(static)
    for (int h = 0; h < heads; ++h) {
      const size_t o = size_t(h) * per_head;
      gather(in.q + o, &fq_[o], idx_fm), gather(in.k + o, &fk_[o], idx_fm), gather(in.v + o, &fv_[o], idx_fm);
      gather(in.q + o, &tq_[o], idx_tr), gather(in.k + o, &tk_[o], idx_tr), gather(in.v + o, &tv_[o], idx_tr);
    }
    // Profiling: sampled frame-major rows, exact vs spatial vs temporal.
    const BlockMap& prof = profile_map_cached(fm);
    const std::vector<int64_t> rows =
        sample_rows(n, rows_, 0x5b9ull * 1000003u + uint64_t(ctx.step) * 4099u + uint64_t(ctx.layer), limit_);
    std::vector<int64_t> rows_tr(rows.size());
    for (size_t r = 0; r < rows.size(); ++r) rows_tr[r] = tr.inverse()[size_t(rows[r])];
    temporal_.assign(size_t(heads), 0);
#pragma omp parallel for schedule(dynamic, 1)
    for (int h = 0; h < heads; ++h) {
      const size_t o = size_t(h) * per_head;
      std::vector<float> exact(rows.size() * size_t(dh)), sp(exact.size()), tp(exact.size());
      reference_rows(&fq_[o], &fk_[o], &fv_[o], n, dh, nullptr, 0, rows, exact.data());
      reference_rows(&fq_[o], &fk_[o], &fv_[o], n, dh, &prof, 0, rows, sp.data());
      reference_rows(&tq_[o], &tk_[o], &tv_[o], n, dh, &prof, 0, rows_tr, tp.data());
      double es = 0, et = 0;
      for (size_t i = 0; i < exact.size(); ++i) {
        es += double(sp[i] - exact[i]) * double(sp[i] - exact[i]);
        et += double(tp[i] - exact[i]) * double(tp[i] - exact[i]);
      }
      temporal_[size_t(h)] = et < es;  // argmin, spatial on ties (index 0)
    }
    const auto t1 = std::chrono::steady_clock::now();
    profile_seconds_ += std::chrono::duration<double>(t1 - t0).count();
    profile_pairs_ += 3.0 * double(rows.size()) / double(n);  // share of an N x N pass, per head
    // Execution: each head in its order, one band map for all.
    const BlockMap& exec = execution_map_cached(fm);
    for (auto* b : {&xq_, &xk_, &xv_, &xo_}) b->resize(per_head * size_t(heads));
#pragma omp parallel for schedule(static)
    for (int h = 0; h < heads; ++h) {
      const size_t o = size_t(h) * per_head;
      const bool t = temporal_[size_t(h)];
      std::memcpy(&xq_[o], t ? &tq_[o] : &fq_[o], sizeof(float) * per_head);
      std::memcpy(&xk_[o], t ? &tk_[o] : &fk_[o], sizeof(float) * per_head);
      std::memcpy(&xv_[o], t ? &tv_[o] : &fv_[o], sizeof(float) * per_head);
    }
    kernel().run(self_attention(xq_.data(), xk_.data(), xv_.data(), xo_.data(), heads, n, dh, &exec));
    AttendReport report;
    report.map = &exec;
    report.density = exec.pair_density();
    {
      std::vector<int32_t> inv_fm(static_cast<size_t>(n)), inv_tr(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) inv_fm[size_t(idx_fm[size_t(i)])] = int32_t(i), inv_tr[size_t(idx_tr[size_t(i)])] = int32_t(i);
      report.kernel_pos.resize(static_cast<size_t>(heads));
      for (int h = 0; h < heads; ++h) report.kernel_pos[size_t(h)] = temporal_[size_t(h)] ? inv_tr : inv_fm;
    }
#pragma omp parallel for schedule(static)
    for (int h = 0; h < heads; ++h) {
      const size_t o = size_t(h) * per_head;
      const std::vector<int32_t>& idx = temporal_[size_t(h)] ? idx_tr : idx_fm;
      for (int64_t i = 0; i < n; ++i)
        std::memcpy(out + o + size_t(idx[size_t(i)]) * dh, &xo_[o + size_t(i) * dh], sizeof(float) * size_t(dh));
    }
    int nt = 0;
    for (char c : temporal_) nt += c;
    temporal_heads_ += nt;
    all_heads_ += heads;
    ++sparse_calls_;
    sparse_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    last_choice_.clear();
    for (char c : temporal_) last_choice_ += c ? 'T' : 'S';
    return report;
  }

  void report(nlohmann::json& j) const override {
    j["density_target"] = density_;
    j["sampled_rows"] = rows_;
    j["sparse_calls"] = sparse_calls_;
    j["profile_seconds"] = profile_seconds_;
    j["sparse_seconds"] = sparse_seconds_;  // profiling + gathers + kernel
    j["profile_share_of_sparse_time"] = sparse_seconds_ > 0 ? profile_seconds_ / sparse_seconds_ : 0.0;
    // Pairs the profiling computes (exact + two masked passes over the sampled rows), as a share
    // of one dense pass, per sparse call.
    j["profile_pairs_per_call"] = sparse_calls_ > 0 ? profile_pairs_ / double(sparse_calls_) : 0.0;
    j["temporal_head_share"] = all_heads_ > 0 ? double(temporal_heads_) / double(all_heads_) : 0.0;
    j["last_head_choice"] = last_choice_;  // per (batch, head): S spatial, T temporal
  }

 private:
  // Frame-major masks (the temporal heads use them in the transposed order).
  BlockMap profile_map(const TokenLayout& fm) const {
    const int64_t f = fm.tokens_per_frame();
    const int64_t b = common().block, thr = (2 * f) / b;
    FunctionMask m([=](int64_t i, int64_t j) { return std::llabs(i / b - j / b) < thr || j < f; });
    return compile_mask(m, fm.tokens(), common().block);
  }
  BlockMap execution_map(const TokenLayout& fm) const {
    const int64_t f = fm.tokens_per_frame(), s = fm.tokens(), b = common().block;
    const double width = double(s) * (1.0 - std::sqrt(1.0 - density_));
    const int64_t w = int64_t(std::ceil(width / double(b))) * b;
    FunctionMask m([=](int64_t i, int64_t j) { return std::llabs(i - j) <= w || j < f; });
    return compile_mask(m, fm.tokens(), common().block);
  }
  const BlockMap& profile_map_cached(const TokenLayout& fm) {
    return cache_.get(fm, common().block, "profile", [&] { return profile_map(fm); });
  }
  const BlockMap& execution_map_cached(const TokenLayout& fm) {
    return cache_.get(fm, common().block, "execution", [&] { return execution_map(fm); });
  }

  double density_;
  int rows_, limit_;
  MapCache cache_;
  std::vector<float> fq_, fk_, fv_, tq_, tk_, tv_, xq_, xk_, xv_, xo_;
  std::vector<char> temporal_;
  std::string last_choice_;
  double profile_seconds_ = 0, sparse_seconds_ = 0, profile_pairs_ = 0;
  int64_t temporal_heads_ = 0, all_heads_ = 0, sparse_calls_ = 0;
};

}  // namespace

std::unique_ptr<AttentionBackend> make_svg(const AttnSpec& spec, const KernelOptions& opt) {
  KeySet keys("svg", spec);
  const double density = keys.real("density", 0.3, 1e-6, 1.0);
  const int rows = keys.integer("rows", 64, 1, 1 << 20);
  const int limit = keys.integer("sample_limit", 10000, 1, 1 << 30);
  // Wan T2V 720p script: 20% of steps and 1 layer dense, 128 blocks.
  const CommonOptions c = read_common(keys, CommonDefaults{128, "frame", "4x4x4", "0.2", 1}, opt.isa);
  keys.finish();
  auto b = std::make_unique<SvgBackend>(c, density, rows, limit, opt);
  b->set_spec_string(keys.spec_string());
  return b;
}

}  // namespace ditgen::attn
