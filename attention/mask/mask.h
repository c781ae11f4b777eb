#pragma once
// Masks as predicates over (query, key) token positions in the active layout, compiled once
// per shape into a BlockMap: a block is full when every real pair in it is allowed, partial
// (with its exact element mask) when some are, and skipped when none is.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "attention/kernel/block_map.h"
#include "core/layout.h"

namespace ditgen::attn {

// A mask over positions of one layout (coordinates come from the layout it was built for).
class PairMask {
 public:
  virtual ~PairMask() = default;
  virtual bool allowed(int64_t q, int64_t k) const = 0;
  // Optional shortcut for a whole block [q0,q1) x [k0,k1): 0 = no pair allowed, 1 = every
  // pair allowed, -1 = unknown (the compiler then tests each pair). Must never be wrong.
  virtual int classify(int64_t q0, int64_t q1, int64_t k0, int64_t k1) const { return -1; }
};

// Wraps a function of (query position, key position).
class FunctionMask : public PairMask {
 public:
  explicit FunctionMask(std::function<bool(int64_t, int64_t)> f) : f_(std::move(f)) {}
  bool allowed(int64_t q, int64_t k) const override { return f_(q, k); }

 private:
  std::function<bool(int64_t, int64_t)> f_;
};

// One map from one mask. Throws (via BlockMap::validate) if a query attends to nothing.
BlockMap compile_mask(const PairMask& mask, int64_t tokens, int block);
// The same over q_tokens queries and kv_tokens keys (e.g. keys beyond the tokens).
BlockMap compile_mask(const PairMask& mask, int64_t q_tokens, int64_t kv_tokens, int block);

// Several maps (one per mask) with head h using map head_map[h % head_map.size()].
BlockMap compile_masks(const std::vector<const PairMask*>& masks, int64_t tokens, int block,
                       std::vector<int32_t> head_map = {});

// Stacks single-map BlockMaps of one size into one multi-map BlockMap.
BlockMap stack_maps(const std::vector<const BlockMap*>& maps, std::vector<int32_t> head_map = {});

// Every block partial with the mask's exact bits: the element mask as a BlockMap, for
// reference_attention in tests.
BlockMap element_map(const PairMask& mask, int64_t tokens, int block);

// Dense boolean block grid (nb x nb, row-major) to a map of full blocks.
BlockMap grid_to_map(const std::vector<char>& grid, int64_t tokens, int block);

// A random map for benchmarks, of about `density`: each query block keeps its diagonal block
// and round(density·nb) - 1 others drawn uniformly (reproducible from `seed`); one map.
BlockMap random_block_map(int64_t tokens, int block, double density, uint64_t seed);

// Reporting of one map: densities as BlockMap defines them.
struct MapStats {
  std::string name;
  double pair_density = 0, attended_density = 0, block_density = 0, partial_fraction = 0;
  int64_t tokens = 0;
  int block = 0, num_maps = 0;
};
MapStats map_stats(const BlockMap& map, const std::string& name);

// One cached compilation per (layout order, block, key): masks are compiled once per shape.
class MapCache {
 public:
  // Returns the cached map for this layout and key, or builds it with `build`.
  const BlockMap& get(const TokenLayout& layout, int block, const std::string& key,
                      const std::function<BlockMap()>& build);
  void clear() { entries_.clear(); }
  size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    int tp, hp, wp, block;
    std::string name, key;
    std::vector<int32_t> order;
    std::unique_ptr<BlockMap> map;
  };
  std::vector<Entry> entries_;
};

}  // namespace ditgen::attn
