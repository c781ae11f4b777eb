#include "attention/kernel/block_map.h"

#include <algorithm>
#include <sstream>
#include <stdexcept>

namespace ditgen::attn {

BlockMap BlockMap::dense(int64_t q_tokens, int64_t kv_tokens, int block) {
  if (q_tokens < 1 || kv_tokens < 1 || block < 1) {
    std::ostringstream s;
    s << "dense block map needs tokens >= 1 and block >= 1, got " << q_tokens << " x " << kv_tokens
      << " tokens, block = " << block;
    throw std::invalid_argument(s.str());
  }
  BlockMapBuilder b(q_tokens, kv_tokens, block);
  const int nq = int((q_tokens + block - 1) / block), nk = int((kv_tokens + block - 1) / block);
  for (int qb = 0; qb < nq; ++qb) {
    for (int kb = 0; kb < nk; ++kb) b.full(kb);
    b.end_row();
  }
  return b.finish();
}

BlockMapBuilder::BlockMapBuilder(int64_t q_tokens, int64_t kv_tokens, int block, int num_maps,
                                 std::vector<int32_t> head_map) {
  m_.tokens = q_tokens;
  m_.kv_tokens = kv_tokens;
  m_.block = block;
  m_.num_maps = num_maps;
  m_.head_map = std::move(head_map);
  m_.full_ptr.assign(1, 0);
  m_.partial_ptr.assign(1, 0);
}

void BlockMapBuilder::partial(int32_t kb, const uint64_t* bits) {
  m_.partial_cols.push_back(kb);
  m_.partial_bits.insert(m_.partial_bits.end(), bits, bits + m_.words_per_block());
}

void BlockMapBuilder::end_row() {
  m_.full_ptr.push_back(int64_t(m_.full_cols.size()));
  m_.partial_ptr.push_back(int64_t(m_.partial_cols.size()));
}

BlockMap BlockMapBuilder::finish() {
  const size_t rows = size_t(m_.num_maps) * size_t(m_.num_blocks());
  if (m_.full_ptr.size() != rows + 1)
    throw std::logic_error("BlockMapBuilder: " + std::to_string(m_.full_ptr.size() - 1) + " rows closed, expected " +
                           std::to_string(rows));
  return std::move(m_);
}

void BlockMap::row_keys(int map, int64_t query, std::vector<char>& allowed) const {
  allowed.assign(size_t(kv_tokens), 0);
  const int qb = int(query / block);
  const int64_t r = row(map, qb);
  for (int64_t e = full_ptr[size_t(r)]; e < full_ptr[size_t(r + 1)]; ++e) {
    const int64_t k0 = int64_t(full_cols[size_t(e)]) * block;
    std::fill(allowed.begin() + k0, allowed.begin() + std::min(kv_tokens, k0 + block), 1);
  }
  for (int64_t e = partial_ptr[size_t(r)]; e < partial_ptr[size_t(r + 1)]; ++e) {
    const int64_t k0 = int64_t(partial_cols[size_t(e)]) * block;
    for (int64_t j = k0; j < std::min(kv_tokens, k0 + block); ++j)
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
  if (tokens < 1 || kv_tokens < 1)
    fail("tokens = " + std::to_string(tokens) + " x " + std::to_string(kv_tokens) + ", expected at least 1 each");
  if (block < 1 || block > 1024) fail("block = " + std::to_string(block) + ", expected 1 to 1024");
  if (num_maps < 1) fail("num_maps = " + std::to_string(num_maps) + ", expected at least 1");
  const int nb = num_blocks(), nk = num_kv_blocks();
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
  std::vector<char> seen(static_cast<size_t>(nk));
  for (int map = 0; map < num_maps; ++map) {
    for (int qb = 0; qb < nb; ++qb) {
      const int64_t r = row(map, qb);
      if (full_ptr[size_t(r + 1)] < full_ptr[size_t(r)] || partial_ptr[size_t(r + 1)] < partial_ptr[size_t(r)])
        fail("row pointers decrease at map " + std::to_string(map) + " query block " + std::to_string(qb));
      std::fill(seen.begin(), seen.end(), 0);
      auto check_col = [&](int32_t kb) {
        if (kb < 0 || kb >= nk)
          fail("map " + std::to_string(map) + " query block " + std::to_string(qb) + " lists key block " +
               std::to_string(kb) + ", expected 0.." + std::to_string(nk - 1));
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
          const int cols_here = int(std::min<int64_t>(block, kv_tokens - int64_t(kb) * block));
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
int64_t kv_block_len(const BlockMap& m, int b) { return std::min<int64_t>(m.block, m.kv_tokens - int64_t(b) * m.block); }

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
  const double all = double(m.tokens) * double(m.kv_tokens);
  for (int map = 0; map < m.num_maps; ++map) {
    if (w[size_t(map)] == 0) continue;
    double pairs = 0;
    for (int qb = 0; qb < m.num_blocks(); ++qb) {
      const int64_t r = m.row(map, qb);
      const double rows = double(block_len(m, qb));
      for (int64_t e = m.full_ptr[size_t(r)]; e < m.full_ptr[size_t(r + 1)]; ++e)
        pairs += rows * double(kv_block_len(m, m.full_cols[size_t(e)]));
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
    return double(block_len(*this, qb)) * double(kv_block_len(*this, partial_cols[size_t(e)]));
  });
}

double BlockMap::attended_density() const {
  return weighted_share(*this, [&](int qb, int64_t e) {
    const int rows = int(block_len(*this, qb)), cols = int(kv_block_len(*this, partial_cols[size_t(e)]));
    double c = 0;
    for (int i = 0; i < rows; ++i)
      for (int j = 0; j < cols; ++j) c += bit(partial_mask(e), block, i, j);
    return c;
  });
}

double BlockMap::block_density() const {
  const double rows = double(num_maps) * num_blocks();
  return double(full_cols.size() + partial_cols.size()) / (rows * num_kv_blocks());
}

double BlockMap::partial_fraction() const {
  const double all = double(full_cols.size() + partial_cols.size());
  return all > 0 ? double(partial_cols.size()) / all : 0.0;
}

BlockMap complement(const BlockMap& m) {
  BlockMapBuilder b(m.tokens, m.kv_tokens, m.block, m.num_maps, m.head_map);
  const int nb = m.num_blocks(), nk = m.num_kv_blocks(), words = m.words_per_block();
  std::vector<int64_t> partial_at(static_cast<size_t>(nk));
  std::vector<char> listed(static_cast<size_t>(nk));
  std::vector<uint64_t> bits(static_cast<size_t>(words));
  for (int map = 0; map < m.num_maps; ++map)
    for (int qb = 0; qb < nb; ++qb) {
      const int64_t r = m.row(map, qb);
      std::fill(listed.begin(), listed.end(), 0);
      for (int64_t e = m.full_ptr[size_t(r)]; e < m.full_ptr[size_t(r + 1)]; ++e) listed[size_t(m.full_cols[size_t(e)])] = 1;
      for (int64_t e = m.partial_ptr[size_t(r)]; e < m.partial_ptr[size_t(r + 1)]; ++e) {
        listed[size_t(m.partial_cols[size_t(e)])] = 2;
        partial_at[size_t(m.partial_cols[size_t(e)])] = e;
      }
      const int rows = int(std::min<int64_t>(m.block, m.tokens - int64_t(qb) * m.block));
      for (int kb = 0; kb < nk; ++kb) {
        if (listed[size_t(kb)] == 0) {
          b.full(kb);
        } else if (listed[size_t(kb)] == 2) {
          const uint64_t* src = m.partial_mask(partial_at[size_t(kb)]);
          const int cols = int(std::min<int64_t>(m.block, m.kv_tokens - int64_t(kb) * m.block));
          std::fill(bits.begin(), bits.end(), 0);
          bool any = false;
          for (int i = 0; i < rows; ++i)
            for (int j = 0; j < cols; ++j)
              if (!BlockMap::bit(src, m.block, i, j)) {
                const int64_t bit = int64_t(i) * m.block + j;
                bits[size_t(bit >> 6)] |= uint64_t(1) << (bit & 63);
                any = true;
              }
          if (any) b.partial(kb, bits.data());
        }
      }
      b.end_row();
    }
  return b.finish();
}

}  // namespace ditgen::attn
