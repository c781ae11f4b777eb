#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>

#include "attention/kernel.h"

namespace ditgen::attn {

Isa parse_isa(const std::string& s) {
  if (s == "auto") return Isa::Auto;
  if (s == "portable") return Isa::Portable;
  if (s == "avx2") return Isa::Avx2;
  if (s == "avx512") return Isa::Avx512;
  if (s == "avx512bf16") return Isa::Avx512Bf16;
  throw std::invalid_argument("unknown kernel ISA '" + s + "': expected auto, portable, avx2, avx512 or avx512bf16");
}

std::string isa_name(Isa isa) {
  switch (isa) {
    case Isa::Auto: return "auto";
    case Isa::Portable: return "portable";
    case Isa::Avx2: return "avx2";
    case Isa::Avx512: return "avx512";
    case Isa::Avx512Bf16: return "avx512bf16";
  }
  return "?";
}

Isa resolve_isa(Isa isa) { return isa == Isa::Auto ? Isa::Portable : isa; }

// Row-at-a-time online softmax over the listed key blocks.
void block_sparse_attention(const float* q, const float* k, const float* v, float* out, int heads,
                            int64_t tokens, int head_dim, const BlockMap& map, const KernelOptions& opt) {
  const float scale = 1.0f / std::sqrt(float(head_dim));
  const int b = map.block, nb = map.num_blocks();
#pragma omp parallel
  {
    std::vector<float> acc(size_t(head_dim));
#pragma omp for collapse(2) schedule(dynamic, 1)
    for (int h = 0; h < heads; ++h) {
      for (int qb = 0; qb < nb; ++qb) {
        const int64_t r = map.row(map.map_of_head(h), qb);
        const float* kh = k + int64_t(h) * tokens * head_dim;
        const float* vh = v + int64_t(h) * tokens * head_dim;
        for (int64_t i = int64_t(qb) * b; i < std::min(tokens, int64_t(qb + 1) * b); ++i) {
          const float* qi = q + (int64_t(h) * tokens + i) * head_dim;
          float m = -INFINITY, l = 0;
          std::fill(acc.begin(), acc.end(), 0.0f);
          auto visit = [&](int64_t j) {
            const float* kj = kh + j * head_dim;
            float s = 0;
            for (int c = 0; c < head_dim; ++c) s += qi[c] * kj[c];
            s *= scale;
            if (s > m) {
              const float f = std::exp(m - s);
              l *= f;
              for (int c = 0; c < head_dim; ++c) acc[size_t(c)] *= f;
              m = s;
            }
            const float p = std::exp(s - m);
            l += p;
            const float* vj = vh + j * head_dim;
            for (int c = 0; c < head_dim; ++c) acc[size_t(c)] += p * vj[c];
          };
          for (int64_t e = map.full_ptr[size_t(r)]; e < map.full_ptr[size_t(r + 1)]; ++e) {
            const int64_t k0 = int64_t(map.full_cols[size_t(e)]) * b;
            for (int64_t j = k0; j < std::min(tokens, k0 + b); ++j) visit(j);
          }
          for (int64_t e = map.partial_ptr[size_t(r)]; e < map.partial_ptr[size_t(r + 1)]; ++e) {
            const int64_t k0 = int64_t(map.partial_cols[size_t(e)]) * b;
            for (int64_t j = k0; j < std::min(tokens, k0 + b); ++j)
              if (BlockMap::bit(map.partial_mask(e), b, int(i - int64_t(qb) * b), int(j - k0))) visit(j);
          }
          float* o = out + (int64_t(h) * tokens + i) * head_dim;
          for (int c = 0; c < head_dim; ++c) o[c] = acc[size_t(c)] / l;
        }
      }
    }
  }
}

}  // namespace ditgen::attn
