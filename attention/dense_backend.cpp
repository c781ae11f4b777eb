#include "attention/backend.h"

namespace ditgen::attn {

void DenseBackend::attend(const AttentionInputs& in, float* out, const AttentionContext&) {
  if (map_.tokens != in.tokens) map_ = BlockMap::dense(in.tokens, block_);
  block_sparse_attention(in.q, in.k, in.v, out, in.batch * in.heads, in.tokens, in.head_dim, map_, opt_);
}

std::string DenseBackend::spec() const { return "dense:block=" + std::to_string(block_); }

}  // namespace ditgen::attn
