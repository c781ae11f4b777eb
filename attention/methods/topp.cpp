// `topp`: dynamic block selection from pooled blocks (in the spirit of SpargeAttn's mean
// pooling and SVG2's top-p over centroids). Per head, each block of queries and keys is
// mean-pooled; the estimated softmax mass of key block b for query block a is
// n_b exp(q̄_a·k̄_b / sqrt(Dh)) normalised over b (n_b = tokens in the block); each query block
// keeps the fewest key blocks whose mass reaches p (the block that crosses p is kept), plus
// always its diagonal block and, with sink=1, key block 0.
#include <algorithm>
#include <cmath>
#include <memory>
#include <numeric>

#include "attention/methods/methods.h"
#include "attention/sparse/sparse_backend.h"

namespace ditgen::attn {

namespace {

class ToppBackend : public SparseBackend {
 public:
  ToppBackend(const CommonOptions& c, double p, bool sink, KernelOptions opt)
      : SparseBackend("topp", c, opt), p_(p), sink_(sink) {}

  std::vector<std::pair<std::string, BlockMap>> preview(const TokenLayout& layout) override {
    // Data-dependent: show the floor (diagonal + sink) that every selection includes.
    const int64_t b = common().block;
    const bool sink = sink_;
    FunctionMask m([=](int64_t i, int64_t j) { return i / b == j / b || (sink && j / b == 0); });
    return {{"topp_floor", compile_mask(m, layout.tokens(), common().block)}};
  }

 protected:
  bool is_static() const override { return false; }

  AttendReport sparse_attend(const AttentionInputs& in, float* out, const AttentionContext&) override {
    const int64_t n = in.tokens;
    const int dh = in.head_dim, heads = in.batch * in.heads, b = common().block;
    const int nb = int((n + b - 1) / b);
    const double scale = 1.0 / std::sqrt(double(dh));
    std::vector<std::vector<int32_t>> cols(size_t(heads) * size_t(nb));
#pragma omp parallel for schedule(dynamic, 1)
    for (int h = 0; h < heads; ++h) {
      const float* q = in.q + size_t(h) * size_t(n) * dh;
      const float* k = in.k + size_t(h) * size_t(n) * dh;
      std::vector<double> qm(size_t(nb) * dh, 0.0), km(size_t(nb) * dh, 0.0), len(static_cast<size_t>(nb));
      for (int a = 0; a < nb; ++a) {
        const int64_t i0 = int64_t(a) * b, i1 = std::min(n, i0 + b);
        len[size_t(a)] = double(i1 - i0);
        for (int64_t i = i0; i < i1; ++i)
          for (int c = 0; c < dh; ++c) {
            qm[size_t(a) * dh + c] += q[size_t(i) * dh + c];
            km[size_t(a) * dh + c] += k[size_t(i) * dh + c];
          }
        for (int c = 0; c < dh; ++c) qm[size_t(a) * dh + c] /= len[size_t(a)], km[size_t(a) * dh + c] /= len[size_t(a)];
      }
      std::vector<double> s(static_cast<size_t>(nb));
      std::vector<int32_t> idx(static_cast<size_t>(nb));
      for (int a = 0; a < nb; ++a) {
        double mx = -1e300;
        for (int kb = 0; kb < nb; ++kb) {
          double d = 0;
          for (int c = 0; c < dh; ++c) d += qm[size_t(a) * dh + c] * km[size_t(kb) * dh + c];
          s[size_t(kb)] = d * scale;
          mx = std::max(mx, s[size_t(kb)]);
        }
        double sum = 0;
        for (int kb = 0; kb < nb; ++kb) sum += (s[size_t(kb)] = len[size_t(kb)] * std::exp(s[size_t(kb)] - mx));
        std::iota(idx.begin(), idx.end(), 0);
        std::sort(idx.begin(), idx.end(), [&](int32_t x, int32_t y) { return s[size_t(x)] > s[size_t(y)] || (s[size_t(x)] == s[size_t(y)] && x < y); });
        std::vector<int32_t>& keep = cols[size_t(h) * nb + a];
        double mass = 0;
        for (int32_t kb : idx) {
          keep.push_back(kb);
          mass += s[size_t(kb)] / sum;
          if (mass >= p_) break;
        }
        auto add = [&](int32_t kb) {
          if (std::find(keep.begin(), keep.end(), kb) == keep.end()) keep.push_back(kb);
        };
        add(a);
        if (sink_) add(0);
        std::sort(keep.begin(), keep.end());
      }
    }
    std::vector<int32_t> head_map(static_cast<size_t>(heads));
    std::iota(head_map.begin(), head_map.end(), 0);
    BlockMapBuilder mb(n, n, b, heads, std::move(head_map));
    for (const auto& c : cols) {
      for (int32_t kb : c) mb.full(kb);
      mb.end_row();
    }
    map_ = mb.finish();
    kernel().run(self_attention(in.q, in.k, in.v, out, heads, n, dh, &map_));
    AttendReport r;
    r.density = map_.pair_density();
    r.map = &map_;
    return r;
  }

  void report(nlohmann::json& j) const override {
    j["p"] = p_;
    j["sink"] = sink_;
  }

 private:
  double p_;
  bool sink_;
  BlockMap map_;
};

}  // namespace

std::unique_ptr<AttentionBackend> make_topp(const AttnSpec& spec, const KernelOptions& opt) {
  KeySet keys("topp", spec);
  const double p = keys.real("p", 0.9, 0.0, 1.0);
  const bool sink = keys.flag("sink", true);
  const CommonOptions c = read_common(keys, CommonDefaults{64, "frame", "4x4x4", "0", 0}, opt.isa);
  keys.finish();
  auto b = std::make_unique<ToppBackend>(c, p, sink, opt);
  b->set_spec_string(keys.spec_string());
  return b;
}

}  // namespace ditgen::attn
