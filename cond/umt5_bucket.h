#pragma once
// T5's bidirectional relative-position buckets (umT5 encoder, docs/wan-t5-reference.md): the
// bucket of rel = key position - query position. Half the buckets are for rel > 0, half for
// rel <= 0; within a half, |rel| below a quarter of the buckets is its own bucket, larger |rel|
// falls into logarithmically wider buckets (the scale reaches the half's end at max_distance)
// and the last bucket takes the rest (for the release's 32 buckets: |rel| >= 91).
#include <cstdint>
#include <vector>

namespace ditgen::cond {

// The bucket as the official code computes it: the logarithmic part in float32
// (log(|rel| / exact) / log(max_distance / exact) * (half - exact)) truncated toward zero, so
// that the boundaries fall where the release's fall. num_buckets even, >= 4; max_distance >
// num_buckets / 4 (std::invalid_argument otherwise).
int relative_position_bucket(int64_t rel, int num_buckets, int max_distance);

// Plain twin for the tests: the same rule in double precision.
int relative_position_bucket_ref(int64_t rel, int num_buckets, int max_distance);

// The buckets of every rel a sequence of L tokens has: entry r + L - 1 for rel = r in
// [-(L - 1), L - 1] (2L - 1 entries).
std::vector<int> relative_bucket_table(int64_t L, int num_buckets, int max_distance);

}  // namespace ditgen::cond
