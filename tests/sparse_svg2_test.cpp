// svg2 (Sparse VideoGen 2's semantic-aware permutation): k-means, the cluster-pair rule, the
// cluster order, and the backend's output against the reference kernel under the same pairs in
// the original token order (fresh random inputs, sizes that are not multiples of the block).
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "attention/kernel/kernel.h"
#include "attention/mask/mask.h"
#include "attention/methods/svg2.h"
#include "attention/spec.h"

using namespace ditgen;
using namespace ditgen::attn;

namespace {

std::vector<float> randn(size_t n, uint64_t seed, float scale = 1.0f) {
  std::mt19937_64 g(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(g);
  return v;
}

double dist2(const float* a, const float* b, int d) {
  double s = 0;
  for (int e = 0; e < d; ++e) s += double(a[e] - b[e]) * (a[e] - b[e]);
  return s;
}

TEST(Svg2, KmeansLabelsAreNearestCentroidsAndSeparateBlobs) {
  const int d = 8, c = 5;
  const int64_t n = 301;
  const std::vector<float> x = randn(size_t(n) * d, 1);
  std::vector<float> cent;
  const std::vector<int32_t> l = kmeans(x.data(), n, d, c, 10, cent, 7);
  ASSERT_EQ(cent.size(), size_t(c) * d);
  for (int64_t i = 0; i < n; ++i)
    for (int j = 0; j < c; ++j)
      EXPECT_LE(dist2(&x[size_t(i) * d], &cent[size_t(l[size_t(i)]) * d], d),
                dist2(&x[size_t(i) * d], &cent[size_t(j) * d], d) + 1e-4);
  std::vector<float> again;
  EXPECT_EQ(kmeans(x.data(), n, d, c, 10, again, 7), l);  // same seed, same clusters
  // Three far-apart blobs in order: one label per blob.
  std::vector<float> blobs = randn(size_t(90) * d, 2, 0.1f);
  for (int i = 0; i < 90; ++i) blobs[size_t(i) * d] += 20.0f * float(i / 30);
  std::vector<float> bc;
  const std::vector<int32_t> bl = kmeans(blobs.data(), 90, d, 3, 20, bc, 3);
  for (int i = 0; i < 90; ++i) EXPECT_EQ(bl[size_t(i)], bl[size_t(i / 30 * 30)]) << i;
  EXPECT_NE(bl[0], bl[30]);
  EXPECT_NE(bl[30], bl[60]);
  EXPECT_NE(bl[0], bl[60]);
}

TEST(Svg2, ClusterOrderIsAStableSortByLabel) {
  std::mt19937 g(5);
  std::vector<int32_t> l(257);
  for (int32_t& x : l) x = int32_t(g() % 9);
  const std::vector<int64_t> o = cluster_order(l, 9);
  std::vector<char> seen(l.size(), 0);
  for (size_t r = 0; r < o.size(); ++r) {
    ASSERT_FALSE(seen[size_t(o[r])]);
    seen[size_t(o[r])] = 1;
    if (r > 0) {
      EXPECT_LE(l[size_t(o[r - 1])], l[size_t(o[r])]);
      if (l[size_t(o[r - 1])] == l[size_t(o[r])]) EXPECT_LT(o[r - 1], o[r]);
    }
  }
}

TEST(Svg2, KeepsTheFewestKeyClustersReachingP) {
  const int d = 16, cq = 6, ck = 20;
  const int64_t n = 400;
  for (uint64_t seed = 0; seed < 5; ++seed) {
    const std::vector<float> q = randn(size_t(n) * d, 10 + seed, 2.0f), k = randn(size_t(n) * d, 20 + seed, 2.0f);
    std::vector<float> qc, kc;
    const auto ql = kmeans(q.data(), n, d, cq, 5, qc, seed), kl = kmeans(k.data(), n, d, ck, 5, kc, seed + 1);
    std::vector<int64_t> kn(ck, 0);
    for (int32_t x : kl) ++kn[size_t(x)];
    for (double p : {0.5, 0.9}) {
      Svg2Params prm;
      prm.p = p;
      prm.min_kc = 0.1;
      const std::vector<char> keep = svg2_keep(qc, ql, kc, kl, d, prm);
      for (int i = 0; i < cq; ++i) {
        std::vector<double> mass(ck, 0.0);
        double total = 0;
        for (int j = 0; j < ck; ++j) {
          if (!kn[size_t(j)]) continue;
          double s = 0;
          for (int e = 0; e < d; ++e) s += double(qc[size_t(i) * d + e]) * kc[size_t(j) * d + e];
          total += mass[size_t(j)] = double(kn[size_t(j)]) * std::exp(s / std::sqrt(double(d)));
        }
        double kept = 0, smallest_kept = 1e300, largest_dropped = 0;
        int count = 0;
        for (int j = 0; j < ck; ++j) {
          if (keep[size_t(i) * ck + j]) {
            EXPECT_GT(kn[size_t(j)], 0);
            kept += mass[size_t(j)];
            smallest_kept = std::min(smallest_kept, mass[size_t(j)]);
            ++count;
          } else if (kn[size_t(j)]) {
            largest_dropped = std::max(largest_dropped, mass[size_t(j)]);
          }
        }
        EXPECT_GE(count, 2);                                  // floor(0.1 * 20)
        EXPECT_GE(kept, p * total * (1 - 1e-9));              // reaches p ...
        EXPECT_GE(smallest_kept, largest_dropped * (1 - 1e-9));  // ... with the largest clusters
        if (count > 2) EXPECT_LT(kept - smallest_kept, p * total);  // ... and no more than needed
      }
      Svg2Params all = prm;
      all.p = 1.0;
      const std::vector<char> every = svg2_keep(qc, ql, kc, kl, d, all);
      for (int i = 0; i < cq; ++i)
        for (int j = 0; j < ck; ++j) EXPECT_EQ(bool(every[size_t(i) * ck + j]), kn[size_t(j)] > 0);
    }
  }
}

// The backend against the reference kernel under the same cluster pairs, in the original order;
// p = 1 is dense attention through the permutation and back.
TEST(Svg2, BackendMatchesTheReferenceUnderTheSamePairs) {
  const int heads = 3, dh = 16, qc = 7, kc = 13;
  for (int64_t n : {int64_t(150), int64_t(257)}) {
    const TokenLayout layout(1, 1, int(n));
    const std::vector<float> q = randn(size_t(heads * n * dh), uint64_t(n), 1.5f);
    const std::vector<float> k = randn(q.size(), uint64_t(n) + 1, 1.5f), v = randn(q.size(), uint64_t(n) + 2);
    const AttentionInputs in{q.data(), k.data(), v.data(), 1, heads, n, dh, &layout};
    for (double p : {0.6, 1.0}) {
      const std::string spec = "svg2:block=32,qc=" + std::to_string(qc) + ",kc=" + std::to_string(kc) +
                               ",p=" + (p < 1 ? std::string("0.6") : std::string("1.0")) + ",init_iters=6,dense_steps=0,dense_layers=0";
      auto b = make_backend(spec);
      std::vector<float> out(q.size()), ref(q.size());
      const AttendReport r = b->attend(in, out.data(), AttentionContext{0, 1, 2, 3});
      Svg2Params prm;
      prm.q_clusters = qc, prm.k_clusters = kc, prm.p = p;
      std::vector<BlockMap> maps;
      for (int h = 0; h < heads; ++h) {
        std::vector<float> cq, ck;
        const float* qh = q.data() + size_t(h) * n * dh;
        const float* kh = k.data() + size_t(h) * n * dh;
        const auto ql = kmeans(qh, n, dh, qc, 6, cq, svg2_seed(2, h));
        const auto kl = kmeans(kh, n, dh, kc, 6, ck, svg2_seed(2, h) + 1);
        const std::vector<char> keep = svg2_keep(cq, ql, ck, kl, dh, prm);
        FunctionMask m([=](int64_t i, int64_t j) { return keep[size_t(ql[size_t(i)]) * kc + size_t(kl[size_t(j)])] != 0; });
        maps.push_back(element_map(m, n, 32));
        int64_t wrong = 0;  // the report's pairs, in the engine's order, are the kept cluster pairs
        for (int64_t i = 0; i < n; ++i)
          for (int64_t j = 0; j < n; ++j) wrong += r.allows(h, i, j) != m.allowed(i, j);
        EXPECT_EQ(wrong, 0) << "head " << h;
      }
      const BlockMap e = stack_maps({&maps[0], &maps[1], &maps[2]}, {0, 1, 2});
      reference_attention(self_attention(q.data(), k.data(), v.data(), ref.data(), heads, n, dh, &e));
      double err = 0;
      for (size_t i = 0; i < out.size(); ++i) err = std::max(err, double(std::fabs(out[i] - ref[i])));
      EXPECT_LT(err, 2e-5) << "n " << n << " p " << p;
      if (p < 1) EXPECT_LT(r.density, 1.0);
      if (p == 1.0) {
        std::vector<float> dense(q.size());
        reference_attention(self_attention(q.data(), k.data(), v.data(), dense.data(), heads, n, dh, nullptr));
        double de = 0;
        for (size_t i = 0; i < out.size(); ++i) de = std::max(de, double(std::fabs(out[i] - dense[i])));
        EXPECT_LT(de, 2e-5);
      }
    }
  }
}

}  // namespace

TEST(Svg2, StateBytesCountTheClusterOrderBuffersAndCentroids) {
  // Over the common state (here that of radial3d with the same kernel and no residual): q, k,
  // v and the output of 2 x 4 heads of 100 tokens x 8 channels, and 8 layers of 4 + 8 centroids
  // per head.
  const int64_t common = make_backend("radial3d:refresh=0")->state_bytes(100, 2, 4, 8, 8);
  const int64_t want = (4 * 2 * 4 * 100 * 8 + 8 * 2 * 4 * (4 + 8) * 8) * int64_t(sizeof(float));
  EXPECT_EQ(make_backend("svg2:qc=4,kc=8,refresh=0")->state_bytes(100, 2, 4, 8, 8) - common, want);
}
