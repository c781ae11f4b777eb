#pragma once
// Sampled query rows, for the estimates that look at a few rows instead of the whole map
// (dense_steps=auto, svg's profiling, the recall probe).
#include <cstdint>
#include <vector>

namespace ditgen::attn {

// Up to `count` distinct rows of 0..min(tokens, limit)-1 (limit <= 0: tokens), sorted,
// reproducible from `seed`.
std::vector<int64_t> sample_rows(int64_t tokens, int count, uint64_t seed, int64_t limit = -1);

}  // namespace ditgen::attn
