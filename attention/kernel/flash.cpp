// Driver of the flash-attention kernel: ISA selection, checks, work items ordered by cost,
// OpenMP over items with per-thread scratch, and the shared chunk-mask helpers. The tile
// computations live in flash_portable.cpp and kernel_avx2/avx512/avx512bf16.cpp.
#include <omp.h>
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <new>
#include <sstream>
#include <stdexcept>
#include <vector>

#include "attention/kernel/kernel.h"
#include "attention/kernel/kernel_impl.h"
#include "core/errors.h"

namespace ditgen::attn {

Isa parse_isa(const std::string& s) {
  if (s == "auto") return Isa::Auto;
  if (s == "portable") return Isa::Portable;
  if (s == "avx2") return Isa::Avx2;
  if (s == "avx512") return Isa::Avx512;
  if (s == "avx512bf16") return Isa::Avx512Bf16;
  throw std::invalid_argument("unknown kernel ISA '" + s + "': expected auto, portable, avx2, avx512 or avx512bf16");
}

std::string isa_name(Isa isa) {
  switch (isa) {
    case Isa::Auto: return "auto";
    case Isa::Portable: return "portable";
    case Isa::Avx2: return "avx2";
    case Isa::Avx512: return "avx512";
    case Isa::Avx512Bf16: return "avx512bf16";
  }
  return "?";
}

namespace {
bool cpu_has(const char* what) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  // __builtin_cpu_supports wants a literal; spell out the few names used.
  const std::string w = what;
  if (w == "avx2") return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (w == "avx512") return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                            __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
  if (w == "avx512bf16") return __builtin_cpu_supports("avx512bf16");
#endif
  (void)what;
  return false;
}
}  // namespace

bool isa_supported(Isa isa) {
  switch (isa) {
    case Isa::Auto:
    case Isa::Portable: return true;
    case Isa::Avx2: return detail::built_avx2() && cpu_has("avx2");
    case Isa::Avx512: return detail::built_avx512() && cpu_has("avx512");
    case Isa::Avx512Bf16: return detail::built_avx512bf16() && cpu_has("avx512") && cpu_has("avx512bf16");
  }
  return false;
}

Isa resolve_isa(Isa isa) {
  if (isa == Isa::Auto) {
    if (isa_supported(Isa::Avx512)) return Isa::Avx512;
    if (isa_supported(Isa::Avx2)) return Isa::Avx2;
    return Isa::Portable;
  }
  if (!isa_supported(isa)) throw std::invalid_argument("kernel ISA '" + isa_name(isa) + "' is not supported by this CPU or build");
  return isa;
}

namespace detail {

size_t scratch_floats(int head_dim) {
  const size_t d = size_t(head_dim) + 1;  // +1: an even channel count for the bf16 packing
  return 2 * d * kTile + size_t(kTile) * kTile + 4 * kTile + 4 * kTile /* masks */ + 64 /* slack */;
}

Scratch carve_scratch(float* base, int head_dim) {
  const size_t d = size_t(head_dim) + 1;
  auto up = [](size_t n) { return (n + 15) & ~size_t(15); };  // 64-byte multiples
  Scratch s;
  float* p = base;
  s.qt = p, p += up(d * kTile);
  s.s = p, p += up(size_t(kTile) * kTile);
  s.o = p, p += up(d * kTile);
  s.m = p, p += kTile;
  s.l = p, p += kTile;
  s.mu = p, p += kTile;
  s.alpha = p, p += kTile;
  s.mask = reinterpret_cast<uint64_t*>(p);
  return s;
}

void transpose_bits64(uint64_t* a) {
  uint64_t m = 0x00000000FFFFFFFFull;
  for (int j = 32; j != 0; j >>= 1, m ^= (m << j)) {
    for (int k = 0; k < 64; k = ((k | j) + 1) & ~j) {
      const uint64_t t = ((a[k] >> j) ^ a[k | j]) & m;
      a[k] ^= t << j;
      a[k | j] ^= t;
    }
  }
}

bool build_chunk_mask(const BlockMap& m, int64_t entry, int row0, int col0, int rows, int cols, uint64_t* out) {
  const uint64_t* bits = m.partial_mask(entry);
  const int b = m.block;
  const uint64_t keep = cols >= 64 ? ~0ull : ((1ull << cols) - 1);
  uint64_t any = 0;
  for (int i = 0; i < kTile; ++i) {
    uint64_t w = 0;
    if (i < rows) {
      const int64_t p = int64_t(row0 + i) * b + col0;
      const int64_t wi = p >> 6;
      const int sh = int(p & 63);
      w = bits[wi] >> sh;
      if (sh != 0 && sh + cols > 64) w |= bits[wi + 1] << (64 - sh);
      w &= keep;
    }
    out[i] = w;
    any |= w;
  }
  if (!any) return false;
  transpose_bits64(out);
  return true;
}

}  // namespace detail

namespace {

struct AlignedFree {
  void operator()(void* p) const { std::free(p); }
};

// The bf16 copies of K and V in one buffer: K as (NH, N, Dh rounded up to even), then, from a
// 32-element boundary, V as (NH, N rounded up to even, Dh).
struct Bf16Layout {
  size_t v_offset, total;
};
Bf16Layout bf16_layout(int heads, int64_t tokens, int head_dim) {
  const size_t d2 = size_t(head_dim + 1) & ~size_t(1);
  const size_t n2 = size_t(tokens + 1) & ~size_t(1);
  const size_t kn = size_t(heads) * size_t(tokens) * d2, vn = size_t(heads) * n2 * size_t(head_dim);
  return {(kn + 31) & ~size_t(31), kn + vn + 32};
}

// Huge-page multiples, so that the buffer's pages can be transparent huge pages.
size_t bf16_buffer_bytes(size_t elements) {
  const size_t page = size_t(2) << 20;
  return (elements * sizeof(uint16_t) + page - 1) & ~(page - 1);
}
// The bf16 copies of K and V, kept per calling thread and reused by later calls (growing only):
// fresh pages cost a fault each, which at N = 4096 is several percent of the kernel.
uint16_t* bf16_buffer(size_t n) {
  struct Buffer {
    std::unique_ptr<uint16_t[], AlignedFree> p;
    size_t n = 0;
  };
  thread_local Buffer buf;
  if (buf.n < n) {
    buf.p.reset();
    const size_t bytes = bf16_buffer_bytes(n);
    void* p = std::aligned_alloc(size_t(2) << 20, bytes);
    if (!p) throw std::bad_alloc();
#ifdef MADV_HUGEPAGE
    madvise(p, bytes, MADV_HUGEPAGE);
#endif
    buf.p.reset(static_cast<uint16_t*>(p));
    buf.n = bytes / sizeof(uint16_t);
  }
  return buf.p.get();
}

void check_inputs(const AttentionCall& c, const BlockMap& map) {
  auto fail = [](const std::string& msg) { throw std::invalid_argument("attention kernel: " + msg); };
  if (c.heads < 0 || c.q_len < 1 || c.kv_len < 1 || c.head_dim < 1)
    fail("needs heads >= 0, q_len >= 1, kv_len >= 1 and head_dim >= 1, got " + std::to_string(c.heads) + ", " +
         std::to_string(c.q_len) + ", " + std::to_string(c.kv_len) + ", " + std::to_string(c.head_dim));
  if (c.heads > 0 && (!c.q || !c.k || !c.v || !c.out)) fail("q, k, v and out must all be given");
  if (c.allow_empty_rows && !c.lse) fail("allow_empty_rows needs lse: an empty row's zero output only means something merged");
  if (map.tokens != c.q_len || map.kv_tokens != c.kv_len)
    fail("block map is for " + std::to_string(map.tokens) + " x " + std::to_string(map.kv_tokens) +
         " tokens, the inputs have " + std::to_string(c.q_len) + " x " + std::to_string(c.kv_len));
  if (map.block < 1 || map.block > 1024 || map.num_maps < 1) fail("block map has a bad block size or map count");
  const size_t rows = size_t(map.num_maps) * size_t(map.num_blocks());
  if (map.full_ptr.size() != rows + 1 || map.partial_ptr.size() != rows + 1 ||
      map.full_ptr.back() != int64_t(map.full_cols.size()) || map.partial_ptr.back() != int64_t(map.partial_cols.size()) ||
      map.partial_bits.size() != map.partial_cols.size() * size_t(map.words_per_block()))
    fail("block map arrays are inconsistent (run BlockMap::validate)");
  for (int32_t h : map.head_map)
    if (h < 0 || h >= map.num_maps) fail("block map head_map names map " + std::to_string(h));
  const int nk = map.num_kv_blocks();
  for (int32_t kb : map.full_cols)
    if (kb < 0 || kb >= nk) fail("block map lists key block " + std::to_string(kb) + " of " + std::to_string(nk));
  for (int32_t kb : map.partial_cols)
    if (kb < 0 || kb >= nk) fail("block map lists key block " + std::to_string(kb) + " of " + std::to_string(nk));
}

}  // namespace

int64_t kernel_state_bytes(const KernelOptions& opt, int block, int heads, int64_t tokens, int head_dim) {
  if (opt.isa != Isa::Avx512Bf16 || block % 2 != 0) return 0;
  return int64_t(bf16_buffer_bytes(bf16_layout(heads, tokens, head_dim).total));
}

void AttentionKernel::run(const AttentionCall& call) const {
  using namespace detail;
  if (!call.map && (dense_.tokens != call.q_len || dense_.kv_tokens != call.kv_len || dense_.block != kTile))
    dense_ = BlockMap::dense(call.q_len, call.kv_len, kTile);
  const BlockMap& map = call.map ? *call.map : dense_;
  check_inputs(call, map);
  const KernelOptions& opt = opt_;
  const int heads = call.heads, head_dim = call.head_dim;
  const int64_t kv_len = call.kv_len;
  if (heads == 0) return;
  Isa isa = resolve_isa(opt.isa);
  if (isa == Isa::Avx512Bf16 && map.block % 2 != 0) isa = Isa::Avx512;
  const TileFn tile = isa == Isa::Avx512Bf16 ? tile_avx512bf16
                      : isa == Isa::Avx512   ? tile_avx512
                      : isa == Isa::Avx2     ? tile_avx2
                                             : tile_portable;

  // Work items: (head, query block, 64-row part), heaviest first. The cost of a row is its
  // number of key chunks (partial ones weighted a little more for their masks).
  const int nb = map.num_blocks();
  const int subs = (map.block + kTile - 1) / kTile;
  std::vector<float> row_cost(size_t(map.num_maps) * nb);
  auto chunks = [&](int32_t kb) {
    const int64_t len = std::min<int64_t>(map.block, kv_len - int64_t(kb) * map.block);
    return float((len + kTile - 1) / kTile);
  };
  for (size_t r = 0; r < row_cost.size(); ++r) {
    float c = 0;
    for (int64_t e = map.full_ptr[r]; e < map.full_ptr[r + 1]; ++e) c += chunks(map.full_cols[size_t(e)]);
    for (int64_t e = map.partial_ptr[r]; e < map.partial_ptr[r + 1]; ++e) c += 1.1f * chunks(map.partial_cols[size_t(e)]);
    row_cost[r] = c + 0.5f;  // + packing and output
  }
  std::vector<Item> items;
  std::vector<float> cost;
  items.reserve(size_t(heads) * nb * subs);
  for (int h = 0; h < heads; ++h)
    for (int qb = 0; qb < nb; ++qb)
      for (int sub = 0; sub < subs; ++sub) {
        Item it{h, qb, sub};
        if (int64_t(qb) * map.block + int64_t(sub) * kTile >= std::min<int64_t>(call.q_len, int64_t(qb + 1) * map.block)) continue;
        items.push_back(it);
        cost.push_back(row_cost[size_t(map.row(map.map_of_head(h), qb))] * float(item_rows(map, it)));
      }
  std::vector<int32_t> order(items.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = int32_t(i);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return cost[size_t(a)] > cost[size_t(b)]; });

  Problem pb;
  pb.q = call.q, pb.k = call.k, pb.v = call.v, pb.out = call.out, pb.lse = call.lse;
  pb.heads = heads, pb.q_len = call.q_len, pb.kv_len = kv_len, pb.head_dim = head_dim, pb.map = &map;
  pb.qscale = float(1.4426950408889634 / std::sqrt(double(head_dim)));

  const int nthreads = opt.threads > 0 ? opt.threads : omp_get_max_threads();
  std::unique_ptr<std::atomic<uint8_t>[]> kv_state;
  if (isa == Isa::Avx512Bf16) {
    const Bf16Layout lay = bf16_layout(heads, kv_len, head_dim);
    uint16_t* buf = bf16_buffer(lay.total);
    pb.kb = buf;
    pb.vb = buf + lay.v_offset;
    const size_t states = size_t(heads) * size_t(map.num_kv_blocks());
    kv_state.reset(new std::atomic<uint8_t>[states]);
    for (size_t i = 0; i < states; ++i) kv_state[i].store(0, std::memory_order_relaxed);
    pb.kv_state = kv_state.get();
  }

  // Each thread claims its next item before computing the current one, so that the current
  // one can prefetch the next one's queries; claims follow the heaviest-first order.
  int64_t empty_rows = 0;
  int64_t first_empty_item = -1;
  const int64_t n_items = int64_t(items.size());
  std::atomic<int64_t> counter{0};
  std::atomic<bool> alloc_failed{false};
#pragma omp parallel num_threads(nthreads) reduction(+ : empty_rows)
  {
    float* raw = static_cast<float*>(std::aligned_alloc(64, ((scratch_floats(head_dim) * sizeof(float)) + 63) & ~size_t(63)));
    if (!raw) alloc_failed = true;
    const Scratch sc = raw ? carve_scratch(raw, head_dim) : Scratch{};
    int64_t t = raw ? counter.fetch_add(1) : n_items;
    while (t < n_items) {
      const int64_t t_next = counter.fetch_add(1);
      const Item& it = items[size_t(order[size_t(t)])];
      const Item* next = t_next < n_items ? &items[size_t(order[size_t(t_next)])] : nullptr;
      const int e = tile(pb, it, next, sc);
      if (e) {
        empty_rows += e;
#pragma omp critical(ditgen_attn_empty)
        if (first_empty_item < 0 || order[size_t(t)] < first_empty_item) first_empty_item = order[size_t(t)];
      }
      t = t_next;
    }
    std::free(raw);
  }
  if (alloc_failed) throw std::bad_alloc();
  if (empty_rows > 0 && !call.allow_empty_rows) {
    // A row with no usable term: either the map gives it no key (the caller's error) or every
    // score it has is -inf (overflowed activations: a failure for the engine's numerical guard).
    // Non-finite scores of any other kind reach the output as NaN, on every path.
    try {
      map.validate();
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(std::string("attention kernel: ") + e.what());
    }
    const Item& it = items[size_t(first_empty_item)];
    std::ostringstream s;
    s << "attention kernel: " << empty_rows << " query row(s) with keys in the map got no finite score (first in head "
      << it.head << ", query block " << it.qb << "): the inputs overflowed";
    throw NumericalError(s.str(), -1);
  }
}

}  // namespace ditgen::attn
