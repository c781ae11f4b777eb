#pragma once
// Wan2.1's text encoder: the encoder half of umT5-XXL (docs/wan-t5-reference.md). Token ids in,
// one state row per token out: token embedding; per block x += o(attention(norm1(x))) with a
// learned relative-position bias per block and no score scaling, then x += fc2(fc1(n) ·
// gelu_tanh(gate(n))) with n = norm2(x); a final norm; T5's RMS norm (no mean, eps 1e-6).
// Widths, depth, heads and buckets come from the tensor shapes, so a narrow test encoder loads
// exactly as the release file (models_t5_umt5-xxl-enc-bf16.safetensors, 11.4 GB bf16) does.
//
// Memory: the linear layers and the embedding are read in place from the file's read-only
// mapping (cond/umt5_linear.h), never copied; after each block its weights' pages are dropped
// from the resident set, so a run holds about one block's weights (386 MB in bf16 at full
// width) plus the activations, and a second run reads them again from the page cache.
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "cond/umt5_linear.h"
#include "core/dtype.h"
#include "core/tensor.h"

namespace ditgen::io {
class SafetensorsFile;
}

namespace ditgen::cond {

// The most tokens encode() takes: Wan's text length (its tokenizer pads and cuts to 512).
constexpr int64_t kUmT5MaxTokens = 512;

struct UmT5Config {
  int64_t vocab = 0;     // token_embedding.weight (vocab, dim)
  int64_t dim = 0;       // D, the state width
  int64_t dim_attn = 0;  // A = H·Dh, blocks.N.attn.q.weight (A, D)
  int64_t dim_ffn = 0;   // F, blocks.N.ffn.fc1.weight (F, D)
  int num_heads = 0;     // H, blocks.N.pos_embedding.embedding.weight (buckets, H)
  int num_layers = 0;    // blocks counted in the file
  int num_buckets = 0;
  int max_distance = 128;  // not in the weights: T5's relative-position range
  double eps = 1e-6;       // not in the weights: T5's norm
  int64_t head_dim() const { return dim_attn / num_heads; }
};

// Every tensor a file of `c` holds, with its shape, in the release's order of names.
std::vector<std::pair<std::string, std::vector<int64_t>>> umt5_tensor_table(const UmT5Config& c);

// The configuration a file's tensor shapes give. Throws std::runtime_error naming the file and
// the tensor that is missing or of the wrong rank, or a head count that does not divide
// dim_attn.
UmT5Config umt5_config(const io::SafetensorsFile& f);

class UmT5Encoder {
 public:
  // Maps `path` and checks every tensor against the configuration its shapes give: a missing
  // tensor, one of another shape (the expected and found shapes named), one that is not F32,
  // BF16 or F16, or one the encoder does not have is a std::runtime_error naming the file and
  // the tensor. `dtype` is the computation: F32 (weights widened exactly, float32 GEMM) or
  // BF16 (bf16 GEMM: activations rounded to bfloat16; needs AVX-512 BF16, else
  // std::invalid_argument). Weights stay in the file's dtype either way.
  static UmT5Encoder load(const std::string& path, DType dtype);

  UmT5Encoder(UmT5Encoder&&) noexcept;
  UmT5Encoder& operator=(UmT5Encoder&&) noexcept;
  ~UmT5Encoder();

  // The states (L, D) of the L = ids.size() tokens (only the real tokens: the official padded,
  // masked run gives the same rows). Throws std::invalid_argument for no ids or more than
  // kUmT5MaxTokens, std::out_of_range naming an id outside [0, vocab) and its position.
  Tensor encode(const std::vector<int32_t>& ids) const;
  // The same, with the residual stream (L, D) after every block appended to `blocks`.
  Tensor encode(const std::vector<int32_t>& ids, std::vector<Tensor>* blocks) const;

  const UmT5Config& config() const { return config_; }
  DType dtype() const { return dtype_; }
  const std::string& path() const;

 private:
  struct Block {
    std::string prefix;                                   // "blocks.N."
    MappedWeight q, k, v, o;                              // (A, D) ×3, (D, A)
    MappedWeight gate, fc1, fc2;                          // (F, D) ×2, (D, F)
    std::vector<float> norm1, norm2;                      // (D)
    std::vector<float> pos;                               // (buckets, H)
  };
  UmT5Encoder() = default;
  void drop_block_pages(const Block& b) const;

  std::unique_ptr<io::SafetensorsFile> file_;
  UmT5Config config_;
  DType dtype_ = DType::F32;
  MappedWeight embedding_;  // (vocab, D)
  std::vector<Block> blocks_;
  std::vector<float> norm_;  // (D)
};

}  // namespace ditgen::cond
