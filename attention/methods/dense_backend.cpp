#include "attention/backend.h"

namespace ditgen::attn {

void DenseBackend::attend(const AttentionInputs& in, float* out, const AttentionContext&) {
  if (map_.tokens != in.tokens) map_ = BlockMap::dense(in.tokens, block_);
  block_sparse_attention(in.q, in.k, in.v, out, in.batch * in.heads, in.tokens, in.head_dim, map_, opt_);
}

std::string DenseBackend::spec() const { return "dense:block=" + std::to_string(block_) + ",isa=" + isa_name(opt_.isa); }

int64_t DenseBackend::state_bytes(int64_t tokens, int batch, int heads, int head_dim, int) const {
  return kernel_state_bytes(opt_, block_, batch * heads, tokens, head_dim);
}

}  // namespace ditgen::attn
