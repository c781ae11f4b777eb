#pragma once
// The umT5 encoder's self-attention: softmax(q·kᵀ + bias) v per head, with T5's learned
// relative-position bias and no 1/sqrt(Dh) scaling (T5 folds it into q's weights). The
// project's attention kernel takes no additive bias; with at most 512 tokens the scores of one
// head (L × L float32, 1 MiB) fit in cache, so each head is two GEMMs and a row softmax.
#include <cstdint>

namespace ditgen::cond {

// q, k, v, out: (L, H·Dh) rows, head h in columns [h·Dh, (h+1)·Dh). rel_bias: (H, 2L - 1), the
// bias of head h for key j and query i at [h][j - i + L - 1]. Heads spread over OpenMP threads.
void biased_attention(const float* q, const float* k, const float* v, int64_t L, int heads, int64_t head_dim,
                      const float* rel_bias, float* out);

// Plain twin for the tests: double precision, one loop per index.
void biased_attention_ref(const float* q, const float* k, const float* v, int64_t L, int heads, int64_t head_dim,
                          const float* rel_bias, float* out);

}  // namespace ditgen::cond
