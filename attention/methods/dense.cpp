#include "attention/backend.h"
#include "attention/methods/methods.h"
#include "attention/sparse/keys.h"

namespace ditgen::attn {

bool AttendReport::allows(int head, int64_t q, int64_t k) const {
  if (map == nullptr) return true;
  if (!kernel_pos.empty()) {
    const std::vector<int32_t>& pos = kernel_pos[size_t(head) % kernel_pos.size()];
    const std::vector<int32_t>& kpos = kernel_pos_kv.empty() ? pos : kernel_pos_kv[size_t(head) % kernel_pos_kv.size()];
    if (!pos.empty()) q = pos[size_t(q)];
    if (!kpos.empty()) k = kpos[size_t(k)];
  }
  return map->allows(map->map_of_head(head), q, k);
}

AttendReport DenseBackend::attend(const AttentionInputs& in, float* out, const AttentionContext&) {
  if (map_.tokens != in.tokens) map_ = BlockMap::dense(in.tokens, block_);
  kernel_.run(self_attention(in.q, in.k, in.v, out, in.batch * in.heads, in.tokens, in.head_dim, &map_));
  return {};
}

std::string DenseBackend::spec() const {
  return "dense:block=" + std::to_string(block_) + ",isa=" + isa_name(kernel_.options().isa);
}

int64_t DenseBackend::state_bytes(int64_t tokens, int batch, int heads, int head_dim, int) const {
  return kernel_state_bytes(kernel_.options(), block_, batch * heads, tokens, head_dim);
}

std::unique_ptr<AttentionBackend> make_dense(const AttnSpec& spec, const KernelOptions& opt) {
  KeySet keys("dense", spec);
  const int block = keys.integer("block", 64, 1, 1024);
  KernelOptions o = opt;
  o.isa = read_isa(keys, opt.isa);
  keys.finish();
  return std::make_unique<DenseBackend>(block, o);
}

}  // namespace ditgen::attn
