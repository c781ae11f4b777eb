#pragma once
// Attention kernels over all heads: softmax(q kᵀ / sqrt(Dh)) v restricted to a BlockMap.
//
// The fast kernel is a tiled flash attention (online softmax, no N×N buffer): each work item
// is (head, 64 query rows of one query block); it walks the row's key blocks in chunks of up to
// 64 keys, computes Sᵀ = K·Qᵀ into an L1-resident 64×64 tile, exponentiates it against the
// running row maxima and accumulates Oᵀ += Vᵀ·P. Full blocks are computed whole, partial blocks
// under their element mask. Work items are spread over OpenMP threads heaviest first with
// dynamic scheduling. Per-thread scratch is O(Dh·64), independent of N.
#include <cstdint>
#include <string>
#include <vector>

#include "attention/kernel/block_map.h"

namespace ditgen::attn {

// Instruction-set path of the fast kernel; Auto picks the best float32 path the CPU supports
// (AVX-512, else AVX2, else portable). Avx512Bf16 is opt-in because it changes the numerics:
// q, k, v and the probabilities are rounded to bfloat16 for the two products (float32
// accumulation, float32 softmax); its NMSE against the double reference is about 1e-5 where the
// float32 paths reach about 1e-13 (see tests/attention_kernel_test.cpp). It converts K and V
// once per call into a bf16 buffer (2·NH·N·Dh·2 bytes) that is kept per calling thread and
// reused by later calls. It needs an even block size; with an odd one it runs the float32
// AVX-512 path instead.
enum class Isa { Auto, Portable, Avx2, Avx512, Avx512Bf16 };
Isa parse_isa(const std::string& s);  // "auto", "portable", "avx2", "avx512", "avx512bf16"
std::string isa_name(Isa isa);
bool isa_supported(Isa isa);          // this CPU and build can run the path (Auto: always)
Isa resolve_isa(Isa isa);             // Auto -> best supported; throws if unsupported here

struct KernelOptions {
  Isa isa = Isa::Auto;
  int threads = 0;  // OpenMP threads for the call; 0: the OpenMP default
};

// Bytes a call keeps allocated after it returns (the bf16 path's per-thread K/V copies; 0 for
// the float32 paths), for memory estimates. heads = NH of the call.
int64_t kernel_state_bytes(const KernelOptions& opt, int block, int heads, int64_t tokens, int head_dim);

// One attention call over all heads: out = softmax(q kᵀ / sqrt(Dh)) v restricted to the pairs
// a block map lists, or over every pair. Self-attention, cross-attention (Nkv context tokens)
// and every sparse method are such calls.
struct AttentionCall {
  const float* q = nullptr;       // (NH, Nq, Dh) contiguous
  const float* k = nullptr;       // (NH, Nkv, Dh)
  const float* v = nullptr;       // (NH, Nkv, Dh)
  float* out = nullptr;           // (NH, Nq, Dh), every element written
  float* lse = nullptr;           // (NH, Nq) or nullptr: ln sum_j exp(q·k_j / sqrt(Dh)) over the pairs computed
  int heads = 0;                  // NH
  int64_t q_len = 0, kv_len = 0;  // Nq, Nkv
  int head_dim = 0;               // Dh
  const BlockMap* map = nullptr;  // Nq x Nkv (head h uses map_of_head(h)); nullptr: dense, 64-token blocks
  // A query row the map gives no key is an error, unless this is set (with lse): one part of a
  // split call, whose empty rows get output 0 and lse -inf for merge_partials.
  bool allow_empty_rows = false;
};

// Self-attention over N tokens (Nq = Nkv = N).
inline AttentionCall self_attention(const float* q, const float* k, const float* v, float* out, int heads,
                                    int64_t tokens, int head_dim, const BlockMap* map) {
  AttentionCall c;
  c.q = q, c.k = k, c.v = v, c.out = out;
  c.heads = heads, c.q_len = tokens, c.kv_len = tokens, c.head_dim = head_dim, c.map = map;
  return c;
}

// The CPU implementation: the tiled flash kernel above on the ISA path of its options. A GPU
// kernel would be another implementation of the same call.
class AttentionKernel {
 public:
  explicit AttentionKernel(KernelOptions opt = {}) : opt_(opt) {}
  // Checks the call (pointers, sizes, the map's shape and arrays) and throws
  // std::invalid_argument naming the problem; then computes it. Not thread-safe: one call at a
  // time per object (the dense map of a nullptr-map call is cached).
  void run(const AttentionCall& call) const;
  const KernelOptions& options() const { return opt_; }

 private:
  KernelOptions opt_;
  mutable BlockMap dense_;
};

// Plain twin for tests: materialises each query row's scores, double accumulation; the same
// contract as AttentionKernel::run (lse included).
void reference_attention(const AttentionCall& call);

// Attention of selected query rows of one head (double accumulation) under map `map_index` of
// `map` (nullptr = dense): q is that head's (Nq, Dh), k and v its (Nkv, Dh); out is rows x Dh.
void reference_rows(const float* q, const float* k, const float* v, int64_t kv_len, int head_dim,
                    const BlockMap* map, int map_index, const std::vector<int64_t>& rows, float* out);

// Two results of the same queries over disjoint key sets, merged exactly: on return (out_a,
// lse_a) is the attention over both sets. rows x Dh outputs and rows log-sum-exps.
void merge_partials(float* out_a, float* lse_a, const float* out_b, const float* lse_b, int64_t rows, int head_dim);

}  // namespace ditgen::attn
