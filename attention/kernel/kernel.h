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

// q, k, v, out: (NH, N, Dh) contiguous float32. Head h uses map.map_of_head(h).
// Every element of out is written. The map must be valid (BlockMap::validate) for `tokens`;
// cheap structural checks are repeated here and throw std::invalid_argument.
void block_sparse_attention(const float* q, const float* k, const float* v, float* out, int heads,
                            int64_t tokens, int head_dim, const BlockMap& map, const KernelOptions& opt = {});

// Plain twin for tests: materialises each query row's scores, double accumulation.
// map == nullptr means dense.
void reference_attention(const float* q, const float* k, const float* v, float* out, int heads, int64_t tokens,
                         int head_dim, const BlockMap* map);

}  // namespace ditgen::attn
