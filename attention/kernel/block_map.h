#pragma once
// BlockMap: which (query block, key block) tiles the block-sparse kernel computes, per map;
// heads share maps through head_map. Full blocks are computed whole; partial blocks carry an
// element mask (bit set = pair attended). Tokens are in the engine's active layout order.
// Queries and keys may differ in number (cross-attention, extra summary keys); self-attention
// maps have kv_tokens == tokens.
#include <cstdint>
#include <string>
#include <vector>

namespace ditgen::attn {

struct BlockMap {
  int64_t tokens = 0;     // Nq: query tokens
  int64_t kv_tokens = 0;  // Nkv: key tokens
  int block = 64;         // query and key block size
  int num_maps = 1;
  std::vector<int32_t> head_map;  // head -> map; empty means every head uses map 0

  // CSR over rows r = map * num_blocks() + query_block.
  std::vector<int64_t> full_ptr;      // rows + 1
  std::vector<int32_t> full_cols;     // key blocks computed whole
  std::vector<int64_t> partial_ptr;   // rows + 1
  std::vector<int32_t> partial_cols;  // key blocks computed under an element mask
  std::vector<uint64_t> partial_bits; // words_per_block() words per partial entry, row-major bits

  int num_blocks() const { return int((tokens + block - 1) / block); }        // query blocks
  int num_kv_blocks() const { return int((kv_tokens + block - 1) / block); }  // key blocks
  int words_per_block() const { return (block * block + 63) / 64; }
  int map_of_head(int head) const { return head_map.empty() ? 0 : head_map[size_t(head) % head_map.size()]; }
  int64_t row(int map, int qb) const { return int64_t(map) * num_blocks() + qb; }
  const uint64_t* partial_mask(int64_t entry) const { return partial_bits.data() + entry * words_per_block(); }
  static bool bit(const uint64_t* mask, int block, int i, int j) {
    const int64_t b = int64_t(i) * block + j;
    return (mask[b >> 6] >> (b & 63)) & 1u;
  }

  // allowed[j] = 1 for each key j that query `query` attends to under map `map`, else 0
  // (allowed is resized to kv_tokens).
  void row_keys(int map, int64_t query, std::vector<char>& allowed) const;
  // Whether query q attends to key k under map `map`.
  bool allows(int map, int64_t q, int64_t k) const;

  // Every key block full, one map shared by all heads: q_tokens x kv_tokens, or square.
  static BlockMap dense(int64_t q_tokens, int64_t kv_tokens, int block);
  static BlockMap dense(int64_t tokens, int block) { return dense(tokens, tokens, block); }

  // Throws std::invalid_argument naming the first problem: sizes, block out of range,
  // duplicate key block in a row, or a query row that attends to nothing.
  void validate() const;

  // Share of the tokens x kv_tokens (query, key) pairs inside computed blocks (partial blocks count whole: the
  // kernel pays for them), averaged over maps weighted by heads.
  double pair_density() const;
  // Share of pairs actually attended (partial blocks counted by their set bits).
  double attended_density() const;
  double block_density() const;
  double partial_fraction() const;  // partial blocks / computed blocks
};

// The pairs `m` does not list, as a map of the same shape, blocks and head mapping: blocks it
// omits are full, its partial blocks come back under the inverted mask (real rows and columns
// only), its full blocks are left out. Rows may be empty, so the result is for split calls
// (AttentionCall::allow_empty_rows), never for BlockMap::validate.
BlockMap complement(const BlockMap& m);

// Builds a BlockMap row by row (query blocks in order, map after map), so that no caller
// writes the CSR arrays by hand.
class BlockMapBuilder {
 public:
  BlockMapBuilder(int64_t q_tokens, int64_t kv_tokens, int block, int num_maps = 1, std::vector<int32_t> head_map = {});
  // Adds key block kb to the current row, whole or under `bits` (words_per_block() words,
  // row-major: bit i * block + j = query i attends key j of the block).
  void full(int32_t kb) { m_.full_cols.push_back(kb); }
  void partial(int32_t kb, const uint64_t* bits);
  // Closes the current row.
  void end_row();
  // The map; throws std::logic_error unless every row of every map was closed.
  BlockMap finish();

 private:
  BlockMap m_;
};

}  // namespace ditgen::attn
