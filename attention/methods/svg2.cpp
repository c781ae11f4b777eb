// `svg2`: Sparse VideoGen 2's semantic-aware permutation (svg2.h). Dynamic: the clusters come
// from each call's q and k; the centroids of a (layer, head) warm-start its next call's k-means
// within a run, as the SVG2 code does between steps.
#include "attention/methods/svg2.h"

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <numeric>
#include <random>

#include "attention/methods/methods.h"
#include "attention/sparse/sparse_backend.h"

namespace ditgen::attn {

namespace {

using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// Nearest centroid of every point: argmin_j |c_j|^2 - 2 x.c_j (|x|^2 is the same for all j).
void assign(const float* x, int64_t n, int d, const std::vector<float>& cent, int c, std::vector<int32_t>& labels) {
  const Eigen::Map<const RowMatrix> X(x, n, d);
  const Eigen::Map<const RowMatrix> C(cent.data(), c, d);
  const Eigen::VectorXf norms = C.rowwise().squaredNorm();
  constexpr int64_t kRows = 1024;  // row chunks keep the n x c distances small
  RowMatrix dots;
  for (int64_t r0 = 0; r0 < n; r0 += kRows) {
    const int64_t rows = std::min(kRows, n - r0);
    dots.noalias() = X.middleRows(r0, rows) * C.transpose();
    for (int64_t i = 0; i < rows; ++i) {
      int32_t best = 0;
      float best_v = norms[0] - 2 * dots(i, 0);
      for (int j = 1; j < c; ++j) {
        const float v = norms[j] - 2 * dots(i, j);
        if (v < best_v) best_v = v, best = j;
      }
      labels[size_t(r0 + i)] = best;
    }
  }
}

}  // namespace

std::vector<int32_t> kmeans(const float* x, int64_t n, int d, int c, int iters, std::vector<float>& cent, uint64_t seed) {
  if (cent.size() != size_t(c) * size_t(d)) {
    std::vector<int64_t> idx(static_cast<size_t>(n));
    std::iota(idx.begin(), idx.end(), 0);
    std::mt19937_64 rng(seed);
    cent.assign(size_t(c) * size_t(d), 0.0f);
    for (int j = 0; j < c; ++j) {  // partial Fisher-Yates: c distinct tokens
      std::uniform_int_distribution<int64_t> pick(j, n - 1);
      std::swap(idx[size_t(j)], idx[size_t(pick(rng))]);
      std::copy_n(x + idx[size_t(j)] * d, d, cent.data() + size_t(j) * d);
    }
  }
  std::vector<int32_t> labels(static_cast<size_t>(n));
  std::vector<double> sum(size_t(c) * size_t(d));
  std::vector<int64_t> count(static_cast<size_t>(c));
  for (int it = 0; it < iters; ++it) {
    assign(x, n, d, cent, c, labels);
    std::fill(sum.begin(), sum.end(), 0.0);
    std::fill(count.begin(), count.end(), 0);
    for (int64_t i = 0; i < n; ++i) {
      const int32_t l = labels[size_t(i)];
      ++count[size_t(l)];
      for (int e = 0; e < d; ++e) sum[size_t(l) * d + e] += x[i * d + e];
    }
    for (int j = 0; j < c; ++j)
      if (count[size_t(j)] > 0)
        for (int e = 0; e < d; ++e) cent[size_t(j) * d + e] = float(sum[size_t(j) * d + e] / double(count[size_t(j)]));
  }
  assign(x, n, d, cent, c, labels);
  return labels;
}

std::vector<char> svg2_keep(const std::vector<float>& qc, const std::vector<int32_t>& ql, const std::vector<float>& kc,
                            const std::vector<int32_t>& kl, int d, const Svg2Params& p) {
  const int cq = int(qc.size() / size_t(d)), ck = int(kc.size() / size_t(d));
  std::vector<int64_t> qn(static_cast<size_t>(cq)), kn(static_cast<size_t>(ck));
  for (int32_t l : ql) ++qn[size_t(l)];
  for (int32_t l : kl) ++kn[size_t(l)];
  const int floor_kept = int(std::floor(p.min_kc * ck));
  const double scale = 1.0 / std::sqrt(double(d));
  std::vector<char> keep(size_t(cq) * size_t(ck), 0);
  std::vector<double> mass(static_cast<size_t>(ck));
  std::vector<int32_t> order;
  for (int i = 0; i < cq; ++i) {
    if (qn[size_t(i)] == 0) continue;
    order.clear();
    double top = -1e300;
    for (int j = 0; j < ck; ++j) {
      if (kn[size_t(j)] == 0) continue;
      double s = 0;
      for (int e = 0; e < d; ++e) s += double(qc[size_t(i) * d + e]) * kc[size_t(j) * d + e];
      mass[size_t(j)] = s * scale;
      top = std::max(top, mass[size_t(j)]);
      order.push_back(j);
    }
    double total = 0;
    for (int32_t j : order) total += (mass[size_t(j)] = double(kn[size_t(j)]) * std::exp(mass[size_t(j)] - top));
    std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return mass[size_t(a)] > mass[size_t(b)]; });
    double acc = 0;
    for (size_t r = 0; r < order.size(); ++r) {
      const bool reached = p.p < 1.0 && acc >= p.p * total;
      if (reached && int(r) >= floor_kept) break;
      keep[size_t(i) * ck + size_t(order[r])] = 1;
      acc += mass[size_t(order[r])];
    }
  }
  return keep;
}

namespace {

// Where each cluster's run starts in the labels sorted by cluster (and, last, the count): per
// cluster [begin, end).
std::vector<int64_t> run_starts(const std::vector<int32_t>& labels, int clusters) {
  std::vector<int64_t> s(size_t(clusters) + 1, 0);
  for (int32_t l : labels) ++s[size_t(l) + 1];
  std::partial_sum(s.begin(), s.end(), s.begin());
  return s;
}

}  // namespace

std::vector<int64_t> cluster_order(const std::vector<int32_t>& labels, int clusters) {
  std::vector<int64_t> start = run_starts(labels, clusters);
  std::vector<int64_t> order(labels.size());
  for (size_t i = 0; i < labels.size(); ++i) order[size_t(start[size_t(labels[i])]++)] = int64_t(i);
  return order;
}

namespace {

// One head's block rows over the permuted tokens: for each query block, its key blocks (whole,
// or partial with bits) from the kept cluster pairs.
struct HeadRows {
  std::vector<std::vector<int32_t>> full, partial;
  std::vector<std::vector<uint64_t>> bits;
};

HeadRows head_rows(const std::vector<int32_t>& qs, const std::vector<int32_t>& ks, int cq, int ck,
                   const std::vector<char>& keep, int64_t n, int b) {
  const std::vector<int64_t> qr = run_starts(qs, cq), kr = run_starts(ks, ck);
  const int nb = int((n + b - 1) / b);
  const int words = (b * b + 63) / 64;
  HeadRows h;
  h.full.resize(size_t(nb));
  h.partial.resize(size_t(nb));
  h.bits.resize(size_t(nb));
  std::vector<uint64_t> bits(static_cast<size_t>(words));
  for (int a = 0; a < nb; ++a) {
    const int64_t r0 = int64_t(a) * b, r1 = std::min(n, r0 + b);
    for (int kb = 0; kb < nb; ++kb) {
      const int64_t c0 = int64_t(kb) * b, c1 = std::min(n, c0 + b);
      bool any = false, all = true;
      std::fill(bits.begin(), bits.end(), 0);
      for (int i = qs[size_t(r0)]; i <= qs[size_t(r1 - 1)]; ++i) {
        const int64_t i0 = std::max(r0, qr[size_t(i)]), i1 = std::min(r1, qr[size_t(i) + 1]);
        if (i0 >= i1) continue;
        for (int j = ks[size_t(c0)]; j <= ks[size_t(c1 - 1)]; ++j) {
          const int64_t j0 = std::max(c0, kr[size_t(j)]), j1 = std::min(c1, kr[size_t(j) + 1]);
          if (j0 >= j1) continue;
          if (!keep[size_t(i) * ck + size_t(j)]) {
            all = false;
            continue;
          }
          any = true;
          for (int64_t r = i0; r < i1; ++r)
            for (int64_t c = j0; c < j1; ++c) {
              const int64_t bit = (r - r0) * b + (c - c0);
              bits[size_t(bit >> 6)] |= uint64_t(1) << (bit & 63);
            }
        }
      }
      if (!any) continue;
      if (all && r1 - r0 == b && c1 - c0 == b) {
        h.full[size_t(a)].push_back(kb);
      } else {
        h.partial[size_t(a)].push_back(kb);
        h.bits[size_t(a)].insert(h.bits[size_t(a)].end(), bits.begin(), bits.end());
      }
    }
  }
  return h;
}

class Svg2Backend : public SparseBackend {
 public:
  Svg2Backend(const CommonOptions& c, const Svg2Params& p, KernelOptions opt) : SparseBackend("svg2", c, opt), p_(p) {}

  // Beside the common state: q, k, v and the output in cluster order, and every layer's
  // centroids (q and k clusters of Dh floats per head).
  int64_t state_bytes(int64_t tokens, int batch, int heads, int head_dim, int num_layers) const override {
    const int64_t rows = int64_t(batch) * heads * tokens * head_dim;
    const int64_t cent = int64_t(num_layers) * batch * heads * (p_.q_clusters + p_.k_clusters) * head_dim;
    return SparseBackend::state_bytes(tokens, batch, heads, head_dim, num_layers) + (4 * rows + cent) * int64_t(sizeof(float));
  }

  std::vector<std::pair<std::string, BlockMap>> preview(const TokenLayout&) override {
    return {};  // every map comes from the call's clusters: nothing to show ahead of a run
  }

 protected:
  bool is_static() const override { return false; }

  AttendReport sparse_attend(const AttentionInputs& in, float* out, const AttentionContext& ctx) override {
    const int64_t n = in.tokens;
    const int dh = in.head_dim, heads = in.batch * in.heads, b = common().block;
    const int cq = int(std::min<int64_t>(p_.q_clusters, n)), ck = int(std::min<int64_t>(p_.k_clusters, n));
    if (new_run() || n != tokens_) centroids_.clear();  // another size
    tokens_ = n;
    auto& cent = centroids_[ctx.layer];
    cent.resize(size_t(heads) * 2);
    const size_t hs = size_t(n) * size_t(dh);
    perm_.resize(3 * size_t(heads) * hs);
    float* qp = perm_.data();
    float* kp = qp + size_t(heads) * hs;
    float* vp = kp + size_t(heads) * hs;
    std::vector<HeadRows> rows(static_cast<size_t>(heads));
    std::vector<std::vector<int64_t>> q_order(static_cast<size_t>(heads));
    AttendReport rep;  // kernel positions of every token, for recall in the engine's order
    rep.kernel_pos.resize(size_t(heads));
    rep.kernel_pos_kv.resize(size_t(heads));
#pragma omp parallel for schedule(dynamic, 1)
    for (int h = 0; h < heads; ++h) {
      const float* q = in.q + size_t(h) * hs;
      const float* k = in.k + size_t(h) * hs;
      const float* v = in.v + size_t(h) * hs;
      const bool warm = !cent[size_t(2 * h)].empty();
      const int iters = warm ? p_.warm_iters : p_.init_iters;
      const uint64_t seed = svg2_seed(ctx.layer, h);
      const std::vector<int32_t> ql = kmeans(q, n, dh, cq, iters, cent[size_t(2 * h)], seed);
      const std::vector<int32_t> kl = kmeans(k, n, dh, ck, iters, cent[size_t(2 * h + 1)], seed + 1);
      const std::vector<char> keep = svg2_keep(cent[size_t(2 * h)], ql, cent[size_t(2 * h + 1)], kl, dh, p_);
      q_order[size_t(h)] = cluster_order(ql, cq);
      const std::vector<int64_t> k_order = cluster_order(kl, ck);
      std::vector<int32_t> qs(static_cast<size_t>(n)), ks(static_cast<size_t>(n));
      rep.kernel_pos[size_t(h)].resize(size_t(n));
      rep.kernel_pos_kv[size_t(h)].resize(size_t(n));
      for (int64_t r = 0; r < n; ++r) {
        const int64_t iq = q_order[size_t(h)][size_t(r)], ik = k_order[size_t(r)];
        rep.kernel_pos[size_t(h)][size_t(iq)] = int32_t(r);
        rep.kernel_pos_kv[size_t(h)][size_t(ik)] = int32_t(r);
        qs[size_t(r)] = ql[size_t(iq)];
        ks[size_t(r)] = kl[size_t(ik)];
        std::copy_n(q + iq * dh, dh, qp + size_t(h) * hs + size_t(r) * dh);
        std::copy_n(k + ik * dh, dh, kp + size_t(h) * hs + size_t(r) * dh);
        std::copy_n(v + ik * dh, dh, vp + size_t(h) * hs + size_t(r) * dh);
      }
      rows[size_t(h)] = head_rows(qs, ks, cq, ck, keep, n, b);
    }
    std::vector<int32_t> head_map(static_cast<size_t>(heads));
    std::iota(head_map.begin(), head_map.end(), 0);
    BlockMapBuilder mb(n, n, b, heads, std::move(head_map));
    const int words = (b * b + 63) / 64;
    for (const HeadRows& h : rows)
      for (size_t a = 0; a < h.full.size(); ++a) {
        for (int32_t kb : h.full[a]) mb.full(kb);
        for (size_t e = 0; e < h.partial[a].size(); ++e) mb.partial(h.partial[a][e], h.bits[a].data() + e * size_t(words));
        mb.end_row();
      }
    map_ = mb.finish();
    out_perm_.resize(size_t(heads) * hs);
    kernel().run(self_attention(qp, kp, vp, out_perm_.data(), heads, n, dh, &map_));
#pragma omp parallel for schedule(static)
    for (int h = 0; h < heads; ++h)
      for (int64_t r = 0; r < n; ++r)
        std::copy_n(out_perm_.data() + size_t(h) * hs + size_t(r) * dh, dh,
                    out + size_t(h) * hs + size_t(q_order[size_t(h)][size_t(r)]) * dh);
    rep.density = map_.pair_density();
    rep.map = &map_;
    return rep;
  }

  void report(nlohmann::json& j) const override {
    j["q_clusters"] = p_.q_clusters;
    j["k_clusters"] = p_.k_clusters;
    j["p"] = p_.p;
    j["min_kc"] = p_.min_kc;
  }

 private:
  Svg2Params p_;
  std::map<int, std::vector<std::vector<float>>> centroids_;  // layer -> (q, k) centroids per head
  int64_t tokens_ = -1;
  std::vector<float> perm_, out_perm_;
  BlockMap map_;
};

}  // namespace

std::unique_ptr<AttentionBackend> make_svg2(const AttnSpec& spec, const KernelOptions& opt) {
  KeySet keys("svg2", spec);
  Svg2Params p;
  p.q_clusters = keys.integer("qc", 16, 1, 65536);
  p.k_clusters = keys.integer("kc", 64, 1, 65536);
  p.p = keys.real("p", 0.9, 1e-6, 1.0);
  p.min_kc = keys.real("min_kc", 0.1, 0.0, 1.0);
  p.init_iters = keys.integer("init_iters", 50, 0, 1000);
  p.warm_iters = keys.integer("warm_iters", 2, 0, 1000);
  const CommonOptions c = read_common(keys, CommonDefaults{64, "frame", "4x4x4", "0.2", 1}, opt.isa);
  keys.finish();
  auto b = std::make_unique<Svg2Backend>(c, p, opt);
  b->set_spec_string(keys.spec_string());
  return b;
}

}  // namespace ditgen::attn
