#include "attention/kernel/block_map.h"

#include <algorithm>
#include <sstream>
#include <stdexcept>

namespace ditgen::attn {

BlockMap BlockMap::dense(int64_t tokens, int block) {
  if (tokens < 1 || block < 1) {
    std::ostringstream s;
    s << "dense block map needs tokens >= 1 and block >= 1, got tokens = " << tokens << ", block = " << block;
    throw std::invalid_argument(s.str());
  }
  BlockMap m;
  m.tokens = tokens;
  m.block = block;
  const int nb = m.num_blocks();
  m.full_ptr.resize(size_t(nb) + 1);
  m.partial_ptr.assign(size_t(nb) + 1, 0);
  m.full_cols.reserve(size_t(nb) * nb);
  for (int qb = 0; qb < nb; ++qb) {
    m.full_ptr[size_t(qb)] = int64_t(m.full_cols.size());
    for (int kb = 0; kb < nb; ++kb) m.full_cols.push_back(kb);
  }
  m.full_ptr[size_t(nb)] = int64_t(m.full_cols.size());
  return m;
}

void BlockMap::row_keys(int map, int64_t query, std::vector<char>& allowed) const {
  allowed.assign(size_t(tokens), 0);
  const int qb = int(query / block);
  const int64_t r = row(map, qb);
  for (int64_t e = full_ptr[size_t(r)]; e < full_ptr[size_t(r + 1)]; ++e) {
    const int64_t k0 = int64_t(full_cols[size_t(e)]) * block;
    std::fill(allowed.begin() + k0, allowed.begin() + std::min(tokens, k0 + block), 1);
  }
  for (int64_t e = partial_ptr[size_t(r)]; e < partial_ptr[size_t(r + 1)]; ++e) {
    const int64_t k0 = int64_t(partial_cols[size_t(e)]) * block;
    for (int64_t j = k0; j < std::min(tokens, k0 + block); ++j)
      if (bit(partial_mask(e), block, int(query - int64_t(qb) * block), int(j - k0))) allowed[size_t(j)] = 1;
  }
}

bool BlockMap::allows(int map, int64_t q, int64_t k) const {
  const int qb = int(q / block), kb = int(k / block);
  const int64_t r = row(map, qb);
  for (int64_t e = full_ptr[size_t(r)]; e < full_ptr[size_t(r + 1)]; ++e)
    if (full_cols[size_t(e)] == kb) return true;
  for (int64_t e = partial_ptr[size_t(r)]; e < partial_ptr[size_t(r + 1)]; ++e)
    if (partial_cols[size_t(e)] == kb)
      return bit(partial_mask(e), block, int(q - int64_t(qb) * block), int(k - int64_t(kb) * block));
  return false;
}

void BlockMap::validate() const {
  auto fail = [](const std::string& msg) { throw std::invalid_argument("block map: " + msg); };
  if (tokens < 1) fail("tokens = " + std::to_string(tokens) + ", expected at least 1");
  if (block < 1 || block > 1024) fail("block = " + std::to_string(block) + ", expected 1 to 1024");
  if (num_maps < 1) fail("num_maps = " + std::to_string(num_maps) + ", expected at least 1");
  const int nb = num_blocks();
  const size_t rows = size_t(num_maps) * size_t(nb);
  if (full_ptr.size() != rows + 1 || partial_ptr.size() != rows + 1)
    fail("row pointer arrays have " + std::to_string(full_ptr.size()) + " and " +
         std::to_string(partial_ptr.size()) + " entries, expected " + std::to_string(rows + 1));
  if (full_ptr.front() != 0 || partial_ptr.front() != 0 || full_ptr.back() != int64_t(full_cols.size()) ||
      partial_ptr.back() != int64_t(partial_cols.size()))
    fail("row pointers do not span the column arrays");
  if (partial_bits.size() != partial_cols.size() * size_t(words_per_block()))
    fail("partial_bits has " + std::to_string(partial_bits.size()) + " words, expected " +
         std::to_string(partial_cols.size() * size_t(words_per_block())));
  for (int32_t m : head_map)
    if (m < 0 || m >= num_maps) fail("head_map entry " + std::to_string(m) + " is not a map index 0.." + std::to_string(num_maps - 1));
  std::vector<char> seen(static_cast<size_t>(nb));
  for (int map = 0; map < num_maps; ++map) {
    for (int qb = 0; qb < nb; ++qb) {
      const int64_t r = row(map, qb);
      if (full_ptr[size_t(r + 1)] < full_ptr[size_t(r)] || partial_ptr[size_t(r + 1)] < partial_ptr[size_t(r)])
        fail("row pointers decrease at map " + std::to_string(map) + " query block " + std::to_string(qb));
      std::fill(seen.begin(), seen.end(), 0);
      auto check_col = [&](int32_t kb) {
        if (kb < 0 || kb >= nb)
          fail("map " + std::to_string(map) + " query block " + std::to_string(qb) + " lists key block " +
               std::to_string(kb) + ", expected 0.." + std::to_string(nb - 1));
        if (seen[size_t(kb)]++)
          fail("map " + std::to_string(map) + " query block " + std::to_string(qb) + " lists key block " +
               std::to_string(kb) + " twice");
      };
      for (int64_t e = full_ptr[size_t(r)]; e < full_ptr[size_t(r + 1)]; ++e) check_col(full_cols[size_t(e)]);
      for (int64_t e = partial_ptr[size_t(r)]; e < partial_ptr[size_t(r + 1)]; ++e) check_col(partial_cols[size_t(e)]);
      if (full_ptr[size_t(r + 1)] > full_ptr[size_t(r)]) continue;
      // No full block: every real query row needs a set bit on a real key column.
      const int rows_here = int(std::min<int64_t>(block, tokens - int64_t(qb) * block));
      for (int i = 0; i < rows_here; ++i) {
        bool any = false;
        for (int64_t e = partial_ptr[size_t(r)]; e < partial_ptr[size_t(r + 1)] && !any; ++e) {
          const int kb = partial_cols[size_t(e)];
          const int cols_here = int(std::min<int64_t>(block, tokens - int64_t(kb) * block));
          for (int j = 0; j < cols_here && !any; ++j) any = bit(partial_mask(e), block, i, j);
        }
        if (!any)
          fail("map " + std::to_string(map) + ": query token " + std::to_string(int64_t(qb) * block + i) +
               " attends to no key (empty row)");
      }
    }
  }
}

namespace {
int64_t block_len(const BlockMap& m, int b) { return std::min<int64_t>(m.block, m.tokens - int64_t(b) * m.block); }

// Map weights: the number of heads using each map (1 each if head_map is empty and num_maps == 1).
std::vector<double> map_weights(const BlockMap& m) {
  std::vector<double> w(size_t(m.num_maps), 0.0);
  if (m.head_map.empty()) {
    w[0] = 1.0;
  } else {
    for (int32_t h : m.head_map) w[size_t(h)] += 1.0;
  }
  return w;
}

template <class PartialCount>
double weighted_share(const BlockMap& m, PartialCount partial_pairs) {
  const std::vector<double> w = map_weights(m);
  double num = 0, den = 0;
  const double all = double(m.tokens) * double(m.tokens);
  for (int map = 0; map < m.num_maps; ++map) {
    if (w[size_t(map)] == 0) continue;
    double pairs = 0;
    for (int qb = 0; qb < m.num_blocks(); ++qb) {
      const int64_t r = m.row(map, qb);
      const double rows = double(block_len(m, qb));
      for (int64_t e = m.full_ptr[size_t(r)]; e < m.full_ptr[size_t(r + 1)]; ++e)
        pairs += rows * double(block_len(m, m.full_cols[size_t(e)]));
      for (int64_t e = m.partial_ptr[size_t(r)]; e < m.partial_ptr[size_t(r + 1)]; ++e)
        pairs += partial_pairs(qb, e);
    }
    num += w[size_t(map)] * pairs;
    den += w[size_t(map)] * all;
  }
  return den > 0 ? num / den : 0.0;
}
}  // namespace

double BlockMap::pair_density() const {
  return weighted_share(*this, [&](int qb, int64_t e) {
    return double(block_len(*this, qb)) * double(block_len(*this, partial_cols[size_t(e)]));
  });
}

double BlockMap::attended_density() const {
  return weighted_share(*this, [&](int qb, int64_t e) {
    const int rows = int(block_len(*this, qb)), cols = int(block_len(*this, partial_cols[size_t(e)]));
    double c = 0;
    for (int i = 0; i < rows; ++i)
      for (int j = 0; j < cols; ++j) c += bit(partial_mask(e), block, i, j);
    return c;
  });
}

double BlockMap::block_density() const {
  const double rows = double(num_maps) * num_blocks();
  return double(full_cols.size() + partial_cols.size()) / (rows * num_blocks());
}

double BlockMap::partial_fraction() const {
  const double all = double(full_cols.size() + partial_cols.size());
  return all > 0 ? double(partial_cols.size()) / all : 0.0;
}

}  // namespace ditgen::attn
