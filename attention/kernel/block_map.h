#pragma once
// BlockMap: which (query block, key block) tiles the block-sparse kernel computes, per map;
// heads share maps through head_map. Full blocks are computed whole; partial blocks carry an
// element mask (bit set = pair attended). Tokens are in the engine's active layout order.
#include <cstdint>
#include <string>
#include <vector>

namespace ditgen::attn {

struct BlockMap {
  int64_t tokens = 0;  // N
  int block = 64;      // query and key block size
  int num_maps = 1;
  std::vector<int32_t> head_map;  // head -> map; empty means every head uses map 0

  // CSR over rows r = map * num_blocks() + query_block.
  std::vector<int64_t> full_ptr;      // rows + 1
  std::vector<int32_t> full_cols;     // key blocks computed whole
  std::vector<int64_t> partial_ptr;   // rows + 1
  std::vector<int32_t> partial_cols;  // key blocks computed under an element mask
  std::vector<uint64_t> partial_bits; // words_per_block() words per partial entry, row-major bits

  int num_blocks() const { return int((tokens + block - 1) / block); }
  int words_per_block() const { return (block * block + 63) / 64; }
  int map_of_head(int head) const { return head_map.empty() ? 0 : head_map[size_t(head) % head_map.size()]; }
  int64_t row(int map, int qb) const { return int64_t(map) * num_blocks() + qb; }
  const uint64_t* partial_mask(int64_t entry) const { return partial_bits.data() + entry * words_per_block(); }
  static bool bit(const uint64_t* mask, int block, int i, int j) {
    const int64_t b = int64_t(i) * block + j;
    return (mask[b >> 6] >> (b & 63)) & 1u;
  }

  // allowed[j] = 1 for each key j that query `query` attends to under map `map`, else 0
  // (allowed is resized to tokens).
  void row_keys(int map, int64_t query, std::vector<char>& allowed) const;
  // Whether query q attends to key k under map `map`.
  bool allows(int map, int64_t q, int64_t k) const;

  // Every key block full, one map shared by all heads.
  static BlockMap dense(int64_t tokens, int block);

  // Throws std::invalid_argument naming the first problem: sizes, block out of range,
  // duplicate key block in a row, or a query row that attends to nothing.
  void validate() const;

  // Share of (query, key) pairs inside computed blocks (partial blocks count whole: the
  // kernel pays for them), averaged over maps weighted by heads.
  double pair_density() const;
  // Share of pairs actually attended (partial blocks counted by their set bits).
  double attended_density() const;
  double block_density() const;
  double partial_fraction() const;  // partial blocks / computed blocks
};

}  // namespace ditgen::attn
