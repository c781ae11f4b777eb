#pragma once
// The attention seam: the model's self-attention calls one backend with q, k, v of all heads,
// the token layout and the (step, layer) context. Dense and sparse methods, and per-step
// policies, are backends; the model knows nothing of them.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "attention/kernel/kernel.h"
#include "core/layout.h"

namespace ditgen::attn {

struct AttentionContext {
  int step = 0, num_steps = 1;    // sampler step (0-based) and count
  int layer = 0, num_layers = 1;  // transformer block
};

struct AttentionInputs {
  const float* q = nullptr;  // (B*NH, N, Dh), RoPE applied, layout order
  const float* k = nullptr;  // (B*NH, N, Dh)
  const float* v = nullptr;  // (B*NH, N, Dh)
  int batch = 1;             // B (heads of sample b are b*NH .. b*NH+NH-1)
  int heads = 1;             // NH
  int64_t tokens = 0;        // N
  int head_dim = 0;          // Dh
  const TokenLayout* layout = nullptr;
  size_t elements() const { return size_t(batch) * size_t(heads) * size_t(tokens) * size_t(head_dim); }
};

// What one attend() computed. `map` points into the backend and stays valid until its next
// attend().
struct AttendReport {
  double density = 1.0;           // share of the N x N query-key pairs computed (1 for dense)
  const BlockMap* map = nullptr;  // the pairs attended; nullptr: every pair
  // Per head (cyclically), the map position of each engine position; empty: the engine's order.
  std::vector<std::vector<int32_t>> kernel_pos;
  // The same for keys where they are ordered apart from the queries (svg2); empty: kernel_pos.
  std::vector<std::vector<int32_t>> kernel_pos_kv;
  // Whether pair (query q, key k) of head `head` (0..B*NH-1) was attended, positions in the
  // engine's layout order. Used to measure attention recall.
  bool allows(int head, int64_t q, int64_t k) const;
};

class AttentionBackend {
 public:
  virtual ~AttentionBackend() = default;
  // out: (B*NH, N, Dh); every element written.
  virtual AttendReport attend(const AttentionInputs& in, float* out, const AttentionContext& ctx) = 0;
  // The spec in full, with defaults spelled out (e.g. "dense:block=64").
  virtual std::string spec() const = 0;
  // The token order the engine should run in on a Tp x Hp x Wp grid (applied once per forward).
  virtual TokenLayout layout(int tp, int hp, int wp) const { return TokenLayout(tp, hp, wp); }
  // Human-readable notes for --json (e.g. profiling cost, switch steps); empty by default.
  virtual std::string report_json() const { return "{}"; }
  // Bytes the backend keeps between calls for a run of this shape (B*NH heads of N tokens,
  // Dh channels, L layers), for the engine's memory estimate before it allocates.
  virtual int64_t state_bytes(int64_t tokens, int batch, int heads, int head_dim, int num_layers) const { return 0; }
  // Whether a step cache (--cache) must run the model at this step because the backend measures
  // something there (refresh=K's anchor steps). False by default.
  virtual bool pinned_step(int step, int num_steps) const { return false; }
};

// Dense: the block-sparse kernel with every block listed.
class DenseBackend : public AttentionBackend {
 public:
  explicit DenseBackend(int block = 64, KernelOptions opt = {}) : block_(block), kernel_(opt) {}
  AttendReport attend(const AttentionInputs& in, float* out, const AttentionContext& ctx) override;
  std::string spec() const override;
  int64_t state_bytes(int64_t tokens, int batch, int heads, int head_dim, int num_layers) const override;

 private:
  int block_;
  AttentionKernel kernel_;
  BlockMap map_;
};

}  // namespace ditgen::attn
