#pragma once
// Private to the attention kernel's translation units (flash.cpp and kernel_*.cpp): the work
// item, per-thread scratch and the per-ISA tile entry points. The ISA units are compiled with
// their own instruction-set flags; they export only the functions declared here and keep all
// their helpers in anonymous namespaces (see kernel_tile.h).
#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "attention/kernel/block_map.h"

namespace ditgen::attn::detail {

constexpr int kTile = 64;  // query rows per work item and keys per chunk

struct Problem {
  const float* q = nullptr;
  const float* k = nullptr;
  const float* v = nullptr;
  float* out = nullptr;
  float* lse = nullptr;  // (NH, Nq) or nullptr
  int heads = 0;
  int64_t q_len = 0, kv_len = 0;  // Nq, Nkv
  int head_dim = 0;
  const BlockMap* map = nullptr;
  float qscale = 1;  // log2(e) / sqrt(Dh), folded into the packed queries (the kernel works in base 2)
  // bfloat16 copies for the Avx512Bf16 path: kb (NH, Nkv, d2) row-major with d2 = Dh rounded up
  // to even; vb (NH, N2 / 2, Dh, 2) with N2 = Nkv rounded up to even: rows 2t and 2t+1
  // interleaved. They are filled per (head, key block) on first use; kv_state (NH × key blocks):
  // 0 absent, 1 being converted, 2 ready.
  const uint16_t* kb = nullptr;
  const uint16_t* vb = nullptr;
  std::atomic<uint8_t>* kv_state = nullptr;
};

// Query rows [qb·B + sub·64, min(that + 64, (qb+1)·B, N)) of head `head`.
struct Item {
  int32_t head = 0, qb = 0, sub = 0;
};

// Per-thread scratch, 64-byte aligned blocks (sizes in floats):
//   qt  Dh·64 (packed queries: channel-major, 64 queries a row)
//   s   64·64 (Sᵀ: key-major, 64 queries a row; P in place)
//   o   Dh·64 (Oᵀ accumulator: channel-major)
//   m, l, mu, alpha: 64 each (row max, row sum, max in use, rescale)
//   mask 2 × 64 words (chunk masks: word j, bit i = query i attends key j)
struct Scratch {
  float* qt;
  float* s;
  float* o;
  float* m;
  float* l;
  float* mu;
  float* alpha;
  uint64_t* mask;
};
size_t scratch_floats(int head_dim);
Scratch carve_scratch(float* base, int head_dim);

// Chunk mask of partial entry `entry`: query rows [row0, row0 + rows) and key columns
// [col0, col0 + cols) of the block, transposed: out[j] bit i. Returns false if no bit is set.
bool build_chunk_mask(const BlockMap& m, int64_t entry, int row0, int col0, int rows, int cols, uint64_t* out);

// 64×64 bit-matrix transpose in place: a[i] bit j -> a[j] bit i.
void transpose_bits64(uint64_t* a);

// Query offset of head h and key/value offset of head h, in floats.
inline int64_t q_offset(const Problem& pb, int h) { return int64_t(h) * pb.q_len * pb.head_dim; }
inline int64_t kv_offset(const Problem& pb, int h) { return int64_t(h) * pb.kv_len * pb.head_dim; }

// After an item: lse of its rows from the running maxima m (base 2, scaled scores) and sums l
// relative to them: ln sum = (m + log2 l) ln 2; -inf for a row without keys.
// A row's softmax sum l is at least 1 once it has seen a key (its maximum term is exp(0)); it is
// 0 for a row that saw none (the empty rows of split calls) and NaN where q or k were not
// finite. Such a row must carry NaN on to the engine's numerical guard, not pass for empty.
inline bool row_empty(float l) { return l == 0.0f; }
inline float row_scale(float l) { return l > 0 ? 1.0f / l : l == 0.0f ? 0.0f : NAN; }

inline void write_lse(const Problem& pb, int head, int64_t q0, int rows, const float* m, const float* l) {
  if (!pb.lse) return;
  float* dst = pb.lse + int64_t(head) * pb.q_len + q0;
  for (int i = 0; i < rows; ++i)
    dst[i] = l[i] > 0 ? float((double(m[i]) + std::log2(double(l[i]))) * 0.6931471805599453) : row_empty(l[i]) ? -INFINITY : NAN;
}

// Query rows of the item (1 to 64).
inline int item_rows(const BlockMap& m, const Item& it) {
  const int64_t r0 = int64_t(it.qb) * m.block + int64_t(it.sub) * kTile;
  const int64_t end = int64_t(it.qb + 1) * m.block < m.tokens ? int64_t(it.qb + 1) * m.block : m.tokens;
  return int(end - r0 < kTile ? end - r0 : kTile);
}

// A tile function computes one item and writes its output rows; it returns the number of rows
// that attended to no key (written as zeros; the driver reports them as an error). `next` is the
// item this thread computes after it (or nullptr): its queries are prefetched during the last
// key chunk.
using TileFn = int (*)(const Problem&, const Item& it, const Item* next, const Scratch&);
int tile_portable(const Problem&, const Item&, const Item*, const Scratch&);
int tile_avx2(const Problem&, const Item&, const Item*, const Scratch&);
int tile_avx512(const Problem&, const Item&, const Item*, const Scratch&);
int tile_avx512bf16(const Problem&, const Item&, const Item*, const Scratch&);
// First query row of an item.
inline int64_t item_row0(const BlockMap& m, const Item& it) { return int64_t(it.qb) * m.block + int64_t(it.sub) * kTile; }
// Whether the ISA units were compiled with their instruction sets (see attention/CMakeLists.txt).
bool built_avx2();
bool built_avx512();
bool built_avx512bf16();

// Calls f(k0, len, mask, next_k0) for each key chunk of the item: full blocks first
// (mask == nullptr), then partial blocks with their chunk mask (chunks without a set bit are
// skipped). next_k0 is the first key of the following chunk (-1 for the last), for prefetching.
// maskbuf holds 2 × 64 words: the pending chunk's mask and the one being built.
template <class F>
inline void for_each_chunk(const BlockMap& m, const Item& it, int rows, uint64_t* maskbuf, F&& f) {
  const int b = m.block;
  const int64_t r = m.row(m.map_of_head(it.head), it.qb);
  int64_t pk0 = -1;
  int plen = 0;
  const uint64_t* pmask = nullptr;
  auto emit = [&](int64_t k0, int len, const uint64_t* mask) {
    if (pk0 >= 0) f(pk0, plen, pmask, k0);
    pk0 = k0, plen = len, pmask = mask;
  };
  for (int64_t e = m.full_ptr[size_t(r)]; e < m.full_ptr[size_t(r + 1)]; ++e) {
    const int64_t k0 = int64_t(m.full_cols[size_t(e)]) * b;
    const int klen = int(k0 + b <= m.kv_tokens ? b : m.kv_tokens - k0);
    for (int c0 = 0; c0 < klen; c0 += kTile) emit(k0 + c0, klen - c0 < kTile ? klen - c0 : kTile, nullptr);
  }
  int which = 0;
  for (int64_t e = m.partial_ptr[size_t(r)]; e < m.partial_ptr[size_t(r + 1)]; ++e) {
    const int64_t k0 = int64_t(m.partial_cols[size_t(e)]) * b;
    const int klen = int(k0 + b <= m.kv_tokens ? b : m.kv_tokens - k0);
    for (int c0 = 0; c0 < klen; c0 += kTile) {
      const int len = klen - c0 < kTile ? klen - c0 : kTile;
      uint64_t* mb = maskbuf + kTile * which;
      if (build_chunk_mask(m, e, it.sub * kTile, c0, rows, len, mb)) {
        emit(k0 + c0, len, mb);
        which ^= 1;
      }
    }
  }
  if (pk0 >= 0) f(pk0, plen, pmask, int64_t(-1));
}

// Up to two stretches of cache lines to prefetch (towards L2), one line per call of line(i):
// the micro-kernels issue one per step, which spreads the requests over a chunk's work.
struct Prefetch {
  const void* a = nullptr;
  int na = 0;
  const void* b = nullptr;
  int nb = 0;
  void line(int i) const {
    if (i < na)
      __builtin_prefetch(static_cast<const char*>(a) + 64 * int64_t(i), 0, 2);
    else if (i - na < nb)
      __builtin_prefetch(static_cast<const char*>(b) + 64 * int64_t(i - na), 0, 2);
  }
};

inline int lines_of(int64_t bytes) { return int((bytes + 63) / 64); }

}  // namespace ditgen::attn::detail
