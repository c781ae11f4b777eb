#pragma once
// Attention kernels over all heads: softmax(q kᵀ / sqrt(Dh)) v restricted to a BlockMap.
#include <cstdint>
#include <string>

#include "attention/block_map.h"

namespace ditgen::attn {

// Instruction-set path of the fast kernel; Auto picks the best the CPU supports.
enum class Isa { Auto, Portable, Avx2, Avx512, Avx512Bf16 };
Isa parse_isa(const std::string& s);  // "auto", "portable", "avx2", "avx512", "avx512bf16"
std::string isa_name(Isa isa);
Isa resolve_isa(Isa isa);             // Auto -> best supported; throws if unsupported here

struct KernelOptions {
  Isa isa = Isa::Auto;
};

// q, k, v, out: (NH, N, Dh) contiguous float32. Head h uses map.map_of_head(h).
// Every element of out is written.
void block_sparse_attention(const float* q, const float* k, const float* v, float* out, int heads,
                            int64_t tokens, int head_dim, const BlockMap& map, const KernelOptions& opt = {});

// Plain twin for tests: materialises each query row's scores, double accumulation.
// map == nullptr means dense.
void reference_attention(const float* q, const float* k, const float* v, float* out, int heads, int64_t tokens,
                         int head_dim, const BlockMap* map);

}  // namespace ditgen::attn
