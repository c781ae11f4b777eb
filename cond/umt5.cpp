#include "cond/umt5.h"

#include <algorithm>
#include <set>
#include <stdexcept>

#include "cond/umt5_attention.h"
#include "cond/umt5_bucket.h"
#include "dit/gemm_bf16.h"
#include "dit/ops.h"
#include "io/safetensors.h"

namespace ditgen::cond {

namespace {

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw std::runtime_error("umT5 encoder file '" + path + "': " + what);
}

const std::vector<int64_t>& shape_of(const io::SafetensorsFile& f, const std::string& name, size_t rank) {
  if (!f.has(name)) fail(f.path(), "has no tensor '" + name + "'");
  const std::vector<int64_t>& s = f.tensor(name).shape;
  if (s.size() != rank)
    fail(f.path(), "tensor '" + name + "' has shape " + shape_string(s) + ", expected rank " + std::to_string(rank));
  return s;
}

std::string block(int i) { return "blocks." + std::to_string(i) + "."; }

}  // namespace

std::vector<std::pair<std::string, std::vector<int64_t>>> umt5_tensor_table(const UmT5Config& c) {
  const int64_t D = c.dim, A = c.dim_attn, F = c.dim_ffn;
  std::vector<std::pair<std::string, std::vector<int64_t>>> t = {{"token_embedding.weight", {c.vocab, D}}};
  for (int i = 0; i < c.num_layers; ++i) {
    const std::string p = block(i);
    t.push_back({p + "norm1.weight", {D}});
    t.push_back({p + "attn.q.weight", {A, D}});
    t.push_back({p + "attn.k.weight", {A, D}});
    t.push_back({p + "attn.v.weight", {A, D}});
    t.push_back({p + "attn.o.weight", {D, A}});
    t.push_back({p + "norm2.weight", {D}});
    t.push_back({p + "ffn.gate.0.weight", {F, D}});
    t.push_back({p + "ffn.fc1.weight", {F, D}});
    t.push_back({p + "ffn.fc2.weight", {D, F}});
    t.push_back({p + "pos_embedding.embedding.weight", {int64_t(c.num_buckets), int64_t(c.num_heads)}});
  }
  t.push_back({"norm.weight", {D}});
  return t;
}

UmT5Config umt5_config(const io::SafetensorsFile& f) {
  UmT5Config c;
  const std::vector<int64_t>& emb = shape_of(f, "token_embedding.weight", 2);
  c.vocab = emb[0];
  c.dim = emb[1];
  c.dim_attn = shape_of(f, "blocks.0.attn.q.weight", 2)[0];
  c.dim_ffn = shape_of(f, "blocks.0.ffn.fc1.weight", 2)[0];
  const std::vector<int64_t>& pos = shape_of(f, "blocks.0.pos_embedding.embedding.weight", 2);
  c.num_buckets = int(pos[0]);
  c.num_heads = int(pos[1]);
  while (f.has(block(c.num_layers) + "norm1.weight")) ++c.num_layers;
  if (c.num_heads < 1 || c.dim_attn % c.num_heads != 0)
    fail(f.path(), "the relative-position table gives " + std::to_string(c.num_heads) +
                       " heads, which do not divide the attention width " + std::to_string(c.dim_attn));
  if (c.num_buckets < 4 || c.num_buckets % 2 != 0 || c.max_distance <= c.num_buckets / 4)
    fail(f.path(), "the relative-position table gives " + std::to_string(c.num_buckets) +
                       " buckets, expected an even number from 4 to " + std::to_string(4 * c.max_distance - 4));
  if (c.vocab < 1 || c.dim < 1 || c.dim_attn < 1 || c.dim_ffn < 1)
    fail(f.path(), "a width of zero (vocab " + std::to_string(c.vocab) + ", dim " + std::to_string(c.dim) +
                       ", dim_attn " + std::to_string(c.dim_attn) + ", dim_ffn " + std::to_string(c.dim_ffn) + ")");
  return c;
}

UmT5Encoder::UmT5Encoder(UmT5Encoder&&) noexcept = default;
UmT5Encoder& UmT5Encoder::operator=(UmT5Encoder&&) noexcept = default;
UmT5Encoder::~UmT5Encoder() = default;

const std::string& UmT5Encoder::path() const { return file_->path(); }

UmT5Encoder UmT5Encoder::load(const std::string& path, DType dtype) {
  if (dtype != DType::F32 && dtype != DType::BF16)
    throw std::invalid_argument(std::string("the umT5 encoder computes in F32 or BF16, not ") + dtype_name(dtype));
  if (dtype == DType::BF16 && !gemm::bf16_gemm_available())
    throw std::invalid_argument("the umT5 encoder in bf16 needs a CPU with AVX-512 BF16, which this one lacks: use float32");
  UmT5Encoder e;
  e.file_ = std::make_unique<io::SafetensorsFile>(io::SafetensorsFile::open(path));
  const io::SafetensorsFile& f = *e.file_;
  e.config_ = umt5_config(f);
  e.dtype_ = dtype;
  const UmT5Config& c = e.config_;

  std::set<std::string> expected;
  for (const auto& [name, shape] : umt5_tensor_table(c)) {
    if (!f.has(name)) fail(path, "has no tensor '" + name + "'");
    const io::SafetensorsTensor& t = f.tensor(name);
    if (t.shape != shape)
      fail(path, "tensor '" + name + "' has shape " + shape_string(t.shape) + ", expected " + shape_string(shape));
    if (t.dtype != DType::F32 && t.dtype != DType::BF16 && t.dtype != DType::F16)
      fail(path, "tensor '" + name + "' is " + dtype_name(t.dtype) + ", expected F32, BF16 or F16");
    expected.insert(name);
  }
  for (const io::SafetensorsTensor& t : f.tensors())
    if (!expected.count(t.name))
      fail(path, "unexpected tensor '" + t.name + "': not part of a umT5 encoder of " + std::to_string(c.num_layers) +
                     " blocks (a decoder, or a shared position table?)");

  auto mapped = [&](const std::string& name) {
    const io::TensorView v = f.view(name);
    return MappedWeight{v.data, v.dtype, v.shape[0], v.shape[1]};
  };
  e.embedding_ = mapped("token_embedding.weight");
  e.blocks_.resize(size_t(c.num_layers));
  for (int i = 0; i < c.num_layers; ++i) {
    Block& b = e.blocks_[size_t(i)];
    b.prefix = block(i);
    b.q = mapped(b.prefix + "attn.q.weight");
    b.k = mapped(b.prefix + "attn.k.weight");
    b.v = mapped(b.prefix + "attn.v.weight");
    b.o = mapped(b.prefix + "attn.o.weight");
    b.gate = mapped(b.prefix + "ffn.gate.0.weight");
    b.fc1 = mapped(b.prefix + "ffn.fc1.weight");
    b.fc2 = mapped(b.prefix + "ffn.fc2.weight");
    b.norm1 = f.to_float(b.prefix + "norm1.weight");
    b.norm2 = f.to_float(b.prefix + "norm2.weight");
    b.pos = f.to_float(b.prefix + "pos_embedding.embedding.weight");
  }
  e.norm_ = f.to_float("norm.weight");
  return e;
}

void UmT5Encoder::drop_block_pages(const Block& b) const {
  for (const char* n : {"attn.q", "attn.k", "attn.v", "attn.o", "ffn.gate.0", "ffn.fc1", "ffn.fc2"})
    file_->drop_pages(b.prefix + n + ".weight");
}

Tensor UmT5Encoder::encode(const std::vector<int32_t>& ids) const { return encode(ids, nullptr); }

Tensor UmT5Encoder::encode(const std::vector<int32_t>& ids, std::vector<Tensor>* captured) const {
  const UmT5Config& c = config_;
  const int64_t L = int64_t(ids.size()), D = c.dim, A = c.dim_attn, F = c.dim_ffn, H = c.num_heads;
  if (L < 1) throw std::invalid_argument("umT5 encoder: no token ids (a prompt has at least its end-of-sequence token)");
  if (L > kUmT5MaxTokens)
    throw std::invalid_argument("umT5 encoder: " + std::to_string(L) + " token ids, expected at most " +
                                std::to_string(kUmT5MaxTokens) + " (Wan's text length)");
  for (int64_t i = 0; i < L; ++i)
    if (ids[size_t(i)] < 0 || ids[size_t(i)] >= c.vocab)
      throw std::out_of_range("umT5 encoder: token id " + std::to_string(ids[size_t(i)]) + " at position " +
                              std::to_string(i) + " is outside the vocabulary [0, " + std::to_string(c.vocab) + ")");

  Tensor x({L, D});  // the residual stream (L, D)
  const size_t row_bytes = size_t(D) * dtype_size(embedding_.dtype);
  for (int64_t i = 0; i < L; ++i)
    convert_to_float(embedding_.dtype, static_cast<const unsigned char*>(embedding_.data) + size_t(ids[size_t(i)]) * row_bytes,
                     x.data() + i * D, D);
  file_->drop_pages("token_embedding.weight");

  const std::vector<int> buckets = relative_bucket_table(L, c.num_buckets, c.max_distance);  // (2L - 1)
  std::vector<float> bias(size_t(H * (2 * L - 1)));                                           // (H, 2L - 1)
  std::vector<float> n(size_t(L * D)), t(size_t(L * D));                                      // (L, D)
  std::vector<float> q(size_t(L * A)), k(size_t(L * A)), v(size_t(L * A)), a(size_t(L * A));  // (L, A)
  std::vector<float> g(size_t(L * F)), h(size_t(L * F));                                      // (L, F)
  auto add_into_x = [&](const std::vector<float>& y) {
    float* xd = x.data();
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < L * D; ++i) xd[i] += y[size_t(i)];
  };
  for (const Block& b : blocks_) {
    for (int64_t hh = 0; hh < H; ++hh)
      for (int64_t r = 0; r < 2 * L - 1; ++r) bias[size_t(hh * (2 * L - 1) + r)] = b.pos[size_t(buckets[size_t(r)] * H + hh)];
    ops::rms_norm(x.data(), L, D, c.eps, b.norm1.data(), n.data());
    mapped_matmul(n.data(), L, b.q, dtype_, q.data());
    mapped_matmul(n.data(), L, b.k, dtype_, k.data());
    mapped_matmul(n.data(), L, b.v, dtype_, v.data());
    biased_attention(q.data(), k.data(), v.data(), L, int(H), c.head_dim(), bias.data(), a.data());
    mapped_matmul(a.data(), L, b.o, dtype_, t.data());
    add_into_x(t);

    ops::rms_norm(x.data(), L, D, c.eps, b.norm2.data(), n.data());
    mapped_matmul(n.data(), L, b.gate, dtype_, g.data());
    ops::gelu_tanh(g.data(), L * F);
    mapped_matmul(n.data(), L, b.fc1, dtype_, h.data());
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < L * F; ++i) h[size_t(i)] *= g[size_t(i)];
    mapped_matmul(h.data(), L, b.fc2, dtype_, t.data());
    add_into_x(t);
    drop_block_pages(b);
    if (captured) captured->push_back(x);
  }
  Tensor out({L, D});
  ops::rms_norm(x.data(), L, D, c.eps, norm_.data(), out.data());
  return out;
}

}  // namespace ditgen::cond
