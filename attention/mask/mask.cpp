#include "attention/mask/mask.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <stdexcept>

namespace ditgen::attn {

namespace {

// Adds the key blocks of query block qb to the builder's current row; force_partial lists
// every block with any allowed pair as partial (element_map).
void build_row(const PairMask& mask, int64_t q_tokens, int64_t kv_tokens, int block, int qb, bool force_partial,
               BlockMapBuilder& out) {
  const int nk = int((kv_tokens + block - 1) / block);
  const int words = (block * block + 63) / 64;
  const int64_t q0 = int64_t(qb) * block, q1 = std::min(q_tokens, q0 + block);
  std::vector<uint64_t> bits(static_cast<size_t>(words));
  for (int kb = 0; kb < nk; ++kb) {
    const int64_t k0 = int64_t(kb) * block, k1 = std::min(kv_tokens, k0 + block);
    const int c = force_partial ? -1 : mask.classify(q0, q1, k0, k1);
    if (c == 0) continue;
    if (c == 1) {
      out.full(kb);
      continue;
    }
    std::fill(bits.begin(), bits.end(), 0);
    int64_t count = 0;
    for (int64_t i = q0; i < q1; ++i)
      for (int64_t j = k0; j < k1; ++j)
        if (mask.allowed(i, j)) {
          const int64_t b = (i - q0) * block + (j - k0);
          bits[size_t(b >> 6)] |= uint64_t(1) << (b & 63);
          ++count;
        }
    if (count == 0) continue;
    if (count == (q1 - q0) * (k1 - k0) && !force_partial) {
      out.full(kb);
    } else {
      out.partial(kb, bits.data());
    }
  }
  out.end_row();
}

BlockMap compile_impl(const std::vector<const PairMask*>& masks, int64_t q_tokens, int64_t kv_tokens, int block,
                      std::vector<int32_t> head_map, bool force_partial) {
  if (masks.empty()) throw std::invalid_argument("compile_masks: no masks");
  if (q_tokens < 1 || kv_tokens < 1 || block < 1 || block > 1024)
    throw std::invalid_argument("compile_masks: tokens = " + std::to_string(q_tokens) + " x " +
                                std::to_string(kv_tokens) + ", block = " + std::to_string(block) +
                                " (block must be 1 to 1024)");
  const int nb = int((q_tokens + block - 1) / block);
  // Rows are built in parallel, one builder each, then appended in order.
  std::vector<BlockMap> rows(static_cast<size_t>(nb) * masks.size());
#pragma omp parallel for schedule(dynamic, 1) collapse(2)
  for (size_t mi = 0; mi < masks.size(); ++mi)
    for (int qb = 0; qb < nb; ++qb) {
      BlockMapBuilder one(std::min<int64_t>(block, q_tokens), kv_tokens, block);
      build_row(*masks[mi], q_tokens, kv_tokens, block, qb, force_partial, one);
      rows[mi * size_t(nb) + size_t(qb)] = one.finish();
    }
  BlockMapBuilder b(q_tokens, kv_tokens, block, int(masks.size()), std::move(head_map));
  for (const BlockMap& r : rows) {
    for (int32_t kb : r.full_cols) b.full(kb);
    for (size_t e = 0; e < r.partial_cols.size(); ++e) b.partial(r.partial_cols[e], r.partial_mask(int64_t(e)));
    b.end_row();
  }
  BlockMap m = b.finish();
  m.validate();
  return m;
}

}  // namespace

BlockMap compile_mask(const PairMask& mask, int64_t tokens, int block) {
  return compile_impl({&mask}, tokens, tokens, block, {}, false);
}

BlockMap compile_mask(const PairMask& mask, int64_t q_tokens, int64_t kv_tokens, int block) {
  return compile_impl({&mask}, q_tokens, kv_tokens, block, {}, false);
}

BlockMap compile_masks(const std::vector<const PairMask*>& masks, int64_t tokens, int block,
                       std::vector<int32_t> head_map) {
  return compile_impl(masks, tokens, tokens, block, std::move(head_map), false);
}

BlockMap element_map(const PairMask& mask, int64_t tokens, int block) {
  return compile_impl({&mask}, tokens, tokens, block, {}, true);
}

BlockMap stack_maps(const std::vector<const BlockMap*>& maps, std::vector<int32_t> head_map) {
  if (maps.empty()) throw std::invalid_argument("stack_maps: no maps");
  const BlockMap& f = *maps[0];
  int num_maps = 0;
  for (const BlockMap* x : maps) {
    if (x->tokens != f.tokens || x->kv_tokens != f.kv_tokens || x->block != f.block)
      throw std::invalid_argument("stack_maps: maps of different sizes (" + std::to_string(x->tokens) + " tokens, block " +
                                  std::to_string(x->block) + " vs " + std::to_string(f.tokens) + ", " +
                                  std::to_string(f.block) + ")");
    num_maps += x->num_maps;
  }
  BlockMapBuilder b(f.tokens, f.kv_tokens, f.block, num_maps, std::move(head_map));
  for (const BlockMap* x : maps)
    for (size_t r = 0; r + 1 < x->full_ptr.size(); ++r) {
      for (int64_t e = x->full_ptr[r]; e < x->full_ptr[r + 1]; ++e) b.full(x->full_cols[size_t(e)]);
      for (int64_t e = x->partial_ptr[r]; e < x->partial_ptr[r + 1]; ++e)
        b.partial(x->partial_cols[size_t(e)], x->partial_mask(e));
      b.end_row();
    }
  BlockMap m = b.finish();
  m.validate();
  return m;
}

BlockMap grid_to_map(const std::vector<char>& grid, int64_t tokens, int block) {
  const int nb = int((tokens + block - 1) / block);
  if (grid.size() != size_t(nb) * size_t(nb))
    throw std::invalid_argument("grid_to_map: grid has " + std::to_string(grid.size()) + " cells, expected " +
                                std::to_string(int64_t(nb) * nb));
  BlockMapBuilder b(tokens, tokens, block);
  for (int qb = 0; qb < nb; ++qb) {
    for (int kb = 0; kb < nb; ++kb)
      if (grid[size_t(qb) * nb + kb]) b.full(kb);
    b.end_row();
  }
  BlockMap m = b.finish();
  m.validate();
  return m;
}

BlockMap random_block_map(int64_t tokens, int block, double density, uint64_t seed) {
  BlockMapBuilder b(tokens, tokens, block);
  const int nb = int((tokens + block - 1) / block);
  const int per_row = std::clamp(int(std::lround(density * nb)), 1, nb);
  std::mt19937_64 rng(seed);
  std::vector<int32_t> cols;
  for (int qb = 0; qb < nb; ++qb) {
    cols.clear();
    for (int kb = 0; kb < nb; ++kb)
      if (kb != qb) cols.push_back(kb);
    std::shuffle(cols.begin(), cols.end(), rng);
    cols.resize(size_t(per_row - 1));
    cols.push_back(qb);
    std::sort(cols.begin(), cols.end());
    for (int32_t kb : cols) b.full(kb);
    b.end_row();
  }
  BlockMap m = b.finish();
  m.validate();
  return m;
}

MapStats map_stats(const BlockMap& map, const std::string& name) {
  MapStats s;
  s.name = name;
  s.pair_density = map.pair_density();
  s.attended_density = map.attended_density();
  s.block_density = map.block_density();
  s.partial_fraction = map.partial_fraction();
  s.tokens = map.tokens;
  s.block = map.block;
  s.num_maps = map.num_maps;
  return s;
}

const BlockMap& MapCache::get(const TokenLayout& layout, int block, const std::string& key,
                              const std::function<BlockMap()>& build) {
  for (const Entry& e : entries_)
    if (e.tp == layout.frames() && e.hp == layout.height() && e.wp == layout.width() && e.block == block &&
        e.key == key && e.name == layout.name() && e.order == layout.order())
      return *e.map;
  if (entries_.size() >= 16) entries_.erase(entries_.begin());  // shapes rarely change; bound memory
  Entry e{layout.frames(), layout.height(), layout.width(), block, layout.name(), key, layout.order(),
          std::make_unique<BlockMap>(build())};
  entries_.push_back(std::move(e));
  return *entries_.back().map;
}

}  // namespace ditgen::attn
