#pragma once
// Sparse VideoGen 2's semantic-aware permutation (arXiv 2505.18875; facts in the reference notes):
// per head, Euclidean k-means on the queries (Cq clusters) and on the keys (Ck clusters); the
// estimated softmax mass of key cluster j for query cluster i is |K_j| exp(c_i . c_j / sqrt(Dh))
// normalised over j; each query cluster keeps the fewest key clusters whose mass reaches p (the
// one that crosses p is kept) and always the floor(min_kc * Ck) largest. Tokens are then sorted
// by cluster (queries by theirs, keys and values by theirs), so that kept cluster pairs form
// dense rectangles for the block-sparse kernel; the output is permuted back.
#include <cstdint>
#include <vector>

namespace ditgen::attn {

struct Svg2Params {
  int q_clusters = 16, k_clusters = 64;
  double p = 0.9;
  double min_kc = 0.1;
  int init_iters = 50, warm_iters = 2;  // k-means: from sampled tokens, or from the last centroids
};

// Lloyd's k-means on n points of dimension d (row-major). `centroids` (c x d): the starting
// centroids when it holds c*d values, else filled from c tokens drawn without replacement by a
// generator seeded with `seed`; returns the label of every point after `iters` rounds of
// (assign, update) and a final assignment, with `centroids` the means of the final clusters'
// previous members (a cluster that empties keeps its centroid). Ties go to the lower index.
std::vector<int32_t> kmeans(const float* x, int64_t n, int d, int c, int iters, std::vector<float>& centroids, uint64_t seed);

// The cluster pairs one head attends: keep[i * ck + j] for query cluster i and key cluster j,
// from the labels and centroids of k-means on q and k (rule above). Empty query clusters keep
// nothing; p >= 1 keeps every non-empty key cluster.
std::vector<char> svg2_keep(const std::vector<float>& q_centroids, const std::vector<int32_t>& q_labels,
                            const std::vector<float>& k_centroids, const std::vector<int32_t>& k_labels, int d,
                            const Svg2Params& p);

// The k-means seed of (layer, head) on the queries; the keys use it + 1.
inline uint64_t svg2_seed(int layer, int head) { return (uint64_t(layer) << 32) ^ (uint64_t(head) * 2); }

// Tokens in cluster order (stable: a cluster's tokens keep their order), the permutation the
// kernel's inputs are gathered by.
std::vector<int64_t> cluster_order(const std::vector<int32_t>& labels, int clusters);

}  // namespace ditgen::attn
