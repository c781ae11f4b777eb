#include "attention/mask/mask.h"

#include <algorithm>
#include <stdexcept>

namespace ditgen::attn {

namespace {

struct RowBuild {
  std::vector<int32_t> full, partial;
  std::vector<uint64_t> bits;
};

// Classifies every key block of query block qb; force_partial lists every block with any
// allowed pair as partial (element_map).
RowBuild build_row(const PairMask& mask, int64_t tokens, int block, int qb, bool force_partial) {
  RowBuild r;
  const int nb = int((tokens + block - 1) / block);
  const int words = (block * block + 63) / 64;
  const int64_t q0 = int64_t(qb) * block, q1 = std::min(tokens, q0 + block);
  std::vector<uint64_t> bits(static_cast<size_t>(words));
  for (int kb = 0; kb < nb; ++kb) {
    const int64_t k0 = int64_t(kb) * block, k1 = std::min(tokens, k0 + block);
    const int c = force_partial ? -1 : mask.classify(q0, q1, k0, k1);
    if (c == 0) continue;
    if (c == 1) {
      r.full.push_back(kb);
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
      r.full.push_back(kb);
    } else {
      r.partial.push_back(kb);
      r.bits.insert(r.bits.end(), bits.begin(), bits.end());
    }
  }
  return r;
}

void append_rows(BlockMap& m, std::vector<RowBuild>& rows) {
  for (auto& r : rows) {
    m.full_cols.insert(m.full_cols.end(), r.full.begin(), r.full.end());
    m.full_ptr.push_back(int64_t(m.full_cols.size()));
    m.partial_cols.insert(m.partial_cols.end(), r.partial.begin(), r.partial.end());
    m.partial_bits.insert(m.partial_bits.end(), r.bits.begin(), r.bits.end());
    m.partial_ptr.push_back(int64_t(m.partial_cols.size()));
  }
}

BlockMap compile_impl(const std::vector<const PairMask*>& masks, int64_t tokens, int block,
                      std::vector<int32_t> head_map, bool force_partial) {
  if (masks.empty()) throw std::invalid_argument("compile_masks: no masks");
  if (tokens < 1 || block < 1 || block > 1024)
    throw std::invalid_argument("compile_masks: tokens = " + std::to_string(tokens) + ", block = " +
                                std::to_string(block) + " (block must be 1 to 1024)");
  BlockMap m;
  m.tokens = tokens;
  m.block = block;
  m.num_maps = int(masks.size());
  m.head_map = std::move(head_map);
  m.full_ptr.assign(1, 0);
  m.partial_ptr.assign(1, 0);
  const int nb = m.num_blocks();
  for (const PairMask* mask : masks) {
    std::vector<RowBuild> rows(static_cast<size_t>(nb));
#pragma omp parallel for schedule(dynamic, 1)
    for (int qb = 0; qb < nb; ++qb) rows[size_t(qb)] = build_row(*mask, tokens, block, qb, force_partial);
    append_rows(m, rows);
  }
  m.validate();
  return m;
}

}  // namespace

BlockMap compile_mask(const PairMask& mask, int64_t tokens, int block) {
  return compile_impl({&mask}, tokens, block, {}, false);
}

BlockMap compile_masks(const std::vector<const PairMask*>& masks, int64_t tokens, int block,
                       std::vector<int32_t> head_map) {
  return compile_impl(masks, tokens, block, std::move(head_map), false);
}

BlockMap element_map(const PairMask& mask, int64_t tokens, int block) {
  return compile_impl({&mask}, tokens, block, {}, true);
}

BlockMap stack_maps(const std::vector<const BlockMap*>& maps, std::vector<int32_t> head_map) {
  if (maps.empty()) throw std::invalid_argument("stack_maps: no maps");
  BlockMap m;
  m.tokens = maps[0]->tokens;
  m.block = maps[0]->block;
  m.num_maps = 0;
  m.head_map = std::move(head_map);
  m.full_ptr.assign(1, 0);
  m.partial_ptr.assign(1, 0);
  for (const BlockMap* x : maps) {
    if (x->tokens != m.tokens || x->block != m.block)
      throw std::invalid_argument("stack_maps: maps of different sizes (" + std::to_string(x->tokens) + " tokens, block " +
                                  std::to_string(x->block) + " vs " + std::to_string(m.tokens) + ", " +
                                  std::to_string(m.block) + ")");
    const int64_t f0 = int64_t(m.full_cols.size()), p0 = int64_t(m.partial_cols.size());
    m.full_cols.insert(m.full_cols.end(), x->full_cols.begin(), x->full_cols.end());
    m.partial_cols.insert(m.partial_cols.end(), x->partial_cols.begin(), x->partial_cols.end());
    m.partial_bits.insert(m.partial_bits.end(), x->partial_bits.begin(), x->partial_bits.end());
    for (size_t r = 1; r < x->full_ptr.size(); ++r) {
      m.full_ptr.push_back(f0 + x->full_ptr[r]);
      m.partial_ptr.push_back(p0 + x->partial_ptr[r]);
    }
    m.num_maps += x->num_maps;
  }
  m.validate();
  return m;
}

BlockMap grid_to_map(const std::vector<char>& grid, int64_t tokens, int block) {
  BlockMap m;
  m.tokens = tokens;
  m.block = block;
  const int nb = m.num_blocks();
  if (grid.size() != size_t(nb) * size_t(nb))
    throw std::invalid_argument("grid_to_map: grid has " + std::to_string(grid.size()) + " cells, expected " +
                                std::to_string(int64_t(nb) * nb));
  m.full_ptr.assign(1, 0);
  m.partial_ptr.assign(size_t(nb) + 1, 0);
  for (int qb = 0; qb < nb; ++qb) {
    for (int kb = 0; kb < nb; ++kb)
      if (grid[size_t(qb) * nb + kb]) m.full_cols.push_back(kb);
    m.full_ptr.push_back(int64_t(m.full_cols.size()));
  }
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
