#include "dit/model.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <sstream>
#include <stdexcept>

#include "dit/ops.h"

namespace ditgen {

namespace {
using Clock = std::chrono::steady_clock;
double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Runs f and adds its wall time to *acc (when profiling).
template <class F>
void timed(double* acc, F&& f) {
  const auto t0 = Clock::now();
  f();
  if (acc) *acc += since(t0);
}
}  // namespace

void ForwardProfile::add_density(int layer, double d) {
  if (int(layer_density_sum.size()) <= layer) {
    layer_density_sum.resize(size_t(layer) + 1, 0.0);
    layer_calls.resize(size_t(layer) + 1, 0);
  }
  layer_density_sum[size_t(layer)] += d;
  layer_calls[size_t(layer)] += 1;
}

double ForwardProfile::mean_density() const {
  double s = 0;
  int n = 0;
  for (size_t i = 0; i < layer_calls.size(); ++i) s += layer_density_sum[i], n += layer_calls[i];
  return n ? s / n : 1.0;
}

int64_t DiTModel::estimate_peak_bytes(const LatentShape& shape, int batch) const {
  const int64_t N = cfg_.tokens(shape), D = cfg_.dim, B = batch;
  const int64_t video = int64_t(shape.frames) * shape.height * shape.width * cfg_.in_channels;
  int64_t floats = 0;
  floats += 3 * B * N * D;                      // x_, a_, y_
  floats += B * N * 3 * D;                      // qkv_
  floats += 4 * B * N * D;                      // q_, k_, v_, attn_
  floats += B * N * std::max<int64_t>(cfg_.ffn_dim, cfg_.patch_values());  // hidden_
  floats += N * cfg_.head_dim();                // RoPE tables
  floats += 6 * B * video;                      // sampler state, noise, velocities, output
  return 4 * floats + weight_bytes() + (int64_t(64) << 20);  // plus 64 MiB for code, threads, codecs
}

int64_t DiTModel::weight_bytes() const { return weight_bytes_; }

DiTModel::DiTModel(DiTConfig cfg, DiTWeights weights) : cfg_(std::move(cfg)), w_(std::move(weights)) {
  cfg_.validate();
  const int64_t D = cfg_.dim;
  // q, k and v fused into one (3D, D) projection, in the weights' own dtype; the parts are
  // released.
  for (BlockWeights& b : w_.blocks) {
    LinearWeights* parts[3] = {&b.sa_q, &b.sa_k, &b.sa_v};
    LinearWeights f;
    f.bias.reset({3 * D});
    for (int p = 0; p < 3; ++p) {
      if (parts[p]->in() != D || parts[p]->out() != D || parts[p]->packed.empty() != parts[0]->packed.empty() ||
          parts[p]->weight.dtype() != parts[0]->weight.dtype())
        throw std::invalid_argument("self-attention q, k and v weights differ in dtype or shape");
      std::memcpy(f.bias.data() + p * D, parts[p]->bias.data(), sizeof(float) * size_t(D));
    }
    if (!parts[0]->packed.empty()) {  // packed by the loader: fused through their bf16 bits
      std::vector<uint16_t> bits(size_t(3 * D * D));
      for (int p = 0; p < 3; ++p) parts[p]->packed.unpack_bits(bits.data() + p * D * D);
      f.packed = gemm::PackedBF16::pack(bits.data(), D, 3 * D);
    } else {
      const DType dt = parts[0]->weight.dtype();
      const size_t elem = dtype_size(dt);
      f.weight.reset({3 * D, D}, dt);
      for (int p = 0; p < 3; ++p)
        std::memcpy(f.weight.raw() + p * D * D * elem, parts[p]->weight.raw(), elem * size_t(D * D));
    }
    for (LinearWeights* part : parts) *part = LinearWeights();
    qkv_weights_.push_back(std::move(f));
  }
  std::vector<LinearWeights*> linears = w_.linears();
  for (LinearWeights& f : qkv_weights_) linears.push_back(&f);
  for (LinearWeights* l : linears) {
    if ((l->weight.dtype() == DType::BF16 || !l->packed.empty()) && !gemm::bf16_gemm_available())
      throw std::invalid_argument("bfloat16 weights need the bf16 GEMM, and this CPU has no AVX-512 BF16: load the "
                                  "model in float32");
    l->pack_bf16();
  }
  for (DiTWeights::Entry& e : w_.tensor_table(cfg_)) weight_bytes_ += e.tensor->bytes();
  for (LinearWeights& f : qkv_weights_) weight_bytes_ += f.weight.bytes() + f.bias.bytes();
  for (LinearWeights* l : linears) weight_bytes_ += l->packed.bytes();
}

void DiTModel::prepare(const LatentShape& shape, const attn::AttentionBackend& backend) {
  cfg_.validate(shape);
  const int tp = shape.frames / cfg_.patch_t, hp = shape.height / cfg_.patch_h, wp = shape.width / cfg_.patch_w;
  TokenLayout layout = backend.layout(tp, hp, wp);
  std::ostringstream key;
  key << layout.name() << ":" << tp << "x" << hp << "x" << wp;
  if (key.str() == layout_key_ && layout.order() == layout_.order()) return;
  layout_ = std::move(layout);
  layout_key_ = key.str();
  shape_ = shape;
  rope_.build(cfg_, layout_, rope_ext_);
}

void DiTModel::set_rope_extrapolation(RopeExtrapolation e) {
  if (e.riflex_k != 0) {
    try {
      check_riflex_pair(cfg_, e.riflex_k);
    } catch (const std::invalid_argument& err) {
      throw std::invalid_argument(std::string("RIFLEx k ") + err.what());
    }
  }
  if (e.riflex_k == rope_ext_.riflex_k) return;
  rope_ext_ = e;
  layout_key_.clear();  // the tables are rebuilt at the next forward
}

void DiTModel::embed_time(const double* timesteps, int batch, Tensor& e, Tensor& e0) {
  const int64_t D = cfg_.dim, half = cfg_.freq_dim / 2;
  Tensor sinus({batch, int64_t(cfg_.freq_dim)});
  for (int b = 0; b < batch; ++b)
    for (int64_t i = 0; i < half; ++i) {
      const double arg = timesteps[b] * std::pow(10000.0, -double(i) / double(half));
      sinus[b * cfg_.freq_dim + i] = float(std::cos(arg));
      sinus[b * cfg_.freq_dim + half + i] = float(std::sin(arg));
    }
  Tensor h({batch, D});
  w_.time0.apply(sinus.data(), batch, h.data());
  ops::silu(h.data(), h.size(), h.data());
  e.reset({batch, D});
  w_.time2.apply(h.data(), batch, e.data());
  ops::silu(e.data(), e.size(), h.data());
  e0.reset({batch, 6, D});
  w_.time_proj.apply(h.data(), batch, e0.data());
}

void DiTModel::forward(const float* x, const LatentShape& shape, int batch, const double* timesteps,
                       const Tensor& raw_ctx, attn::AttentionBackend& backend, const attn::AttentionContext& actx,
                       float* out, ForwardProfile* profile) {
  const auto t_start = Clock::now();
  const double lin0 = profile ? profile->linear_seconds : 0, att0 = profile ? profile->attention_seconds : 0;
  if (raw_ctx.rank() != 3 || raw_ctx.dim(0) != batch || raw_ctx.dim(1) != cfg_.ctx_len || raw_ctx.dim(2) != cfg_.ctx_dim) {
    std::ostringstream s;
    s << "context has shape " << shape_string(raw_ctx.shape()) << ", expected (" << batch << ", " << cfg_.ctx_len
      << ", " << cfg_.ctx_dim << ")";
    throw std::invalid_argument(s.str());
  }
  prepare(shape, backend);
  const int64_t D = cfg_.dim, N = layout_.tokens(), BN = int64_t(batch) * N;
  const int C = cfg_.in_channels, pt = cfg_.patch_t, ph = cfg_.patch_h, pw = cfg_.patch_w;
  const int64_t Pin = int64_t(C) * pt * ph * pw;
  const int64_t H = shape.height, W = shape.width;
  const int64_t video = int64_t(shape.frames) * H * W * C;
  double* lin = profile ? &profile->linear_seconds : nullptr;

  // 1. Patch embedding, gathered straight into layout order: patches (B, N, Pin) channel-slowest.
  hidden_.reset({BN, Pin});
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < BN; ++r) {
    const int64_t b = r / N, i = r % N;
    const Coord c = layout_.coord(i);
    const float* xb = x + b * video;
    float* p = hidden_.data() + r * Pin;
    for (int ci = 0; ci < C; ++ci)
      for (int a = 0; a < pt; ++a)
        for (int bb = 0; bb < ph; ++bb)
          for (int rr = 0; rr < pw; ++rr)
            p[((ci * pt + a) * ph + bb) * pw + rr] =
                xb[((int64_t(c.t * pt + a) * H + (c.h * ph + bb)) * W + (c.w * pw + rr)) * C + ci];
  }
  x_.reset({batch, N, D});
  timed(lin, [&] { w_.patch.apply(hidden_.data(), BN, x_.data()); });

  // 2. Time embedding and 3. conditioning.
  Tensor e, e0;
  embed_time(timesteps, batch, e, e0);
  const int64_t L = cfg_.ctx_len;
  Tensor ctx_h({int64_t(batch), L, D}), ctx({int64_t(batch), L, D});
  w_.text0.apply(raw_ctx.data(), batch * L, ctx_h.data());
  ops::gelu_tanh(ctx_h.data(), ctx_h.size());
  w_.text2.apply(ctx_h.data(), batch * L, ctx.data());

  if (capture_) capture_->clear();
  attn::AttentionContext ctx_l = actx;
  ctx_l.num_layers = cfg_.num_layers;
  for (int l = 0; l < cfg_.num_layers; ++l) {
    ctx_l.layer = l;
    try {
      block_forward(l, batch, e0, ctx, backend, ctx_l, profile);
    } catch (const NumericalError& e) {  // the attention kernel's, which knows no block
      throw NumericalError(std::string(e.what()) + " in block " + std::to_string(l), l);
    }
    bool finite = true;
#pragma omp parallel for reduction(&& : finite) schedule(static)
    for (int64_t i = 0; i < BN * D; ++i) finite = finite && std::isfinite(x_[i]);
    if (!finite) throw NumericalError("non-finite value in the output of block " + std::to_string(l), l);
    if (capture_) {
      Tensor snap({int64_t(batch), N, D});
      for (int b = 0; b < batch; ++b) layout_.unpermute(x_.data() + b * N * D, snap.data() + b * N * D, D);
      capture_->push_back(std::move(snap));
    }
  }

  // Head: LN · (1 + scale) + shift with (head.modulation + e), linear to P, unpatchify.
  const int64_t P = cfg_.patch_values();
  a_.reset({batch, N, D});
  for (int b = 0; b < batch; ++b) {
    std::vector<float> shift(static_cast<size_t>(D)), scale(static_cast<size_t>(D));
    for (int64_t d = 0; d < D; ++d) {
      shift[size_t(d)] = w_.head_modulation[d] + e[b * D + d];
      scale[size_t(d)] = w_.head_modulation[D + d] + e[b * D + d];
    }
    ops::layer_norm_modulate(x_.data() + b * N * D, N, D, cfg_.eps, shift.data(), scale.data(), a_.data() + b * N * D);
  }
  y_.reset({BN, P});
  timed(lin, [&] { w_.head.apply(a_.data(), BN, y_.data()); });
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < BN; ++r) {
    const int64_t b = r / N, i = r % N;
    const Coord c = layout_.coord(i);
    const float* p = y_.data() + r * P;
    float* ob = out + b * video;
    for (int a = 0; a < pt; ++a)
      for (int bb = 0; bb < ph; ++bb)
        for (int rr = 0; rr < pw; ++rr)
          for (int ci = 0; ci < C; ++ci)
            ob[((int64_t(c.t * pt + a) * H + (c.h * ph + bb)) * W + (c.w * pw + rr)) * C + ci] =
                p[((a * ph + bb) * pw + rr) * C + ci];
  }
  if (profile) {
    const double total = since(t_start);
    profile->other_seconds += total - (profile->linear_seconds - lin0) - (profile->attention_seconds - att0);
  }
}

void DiTModel::block_forward(int layer, int batch, const Tensor& e0, const Tensor& ctx,
                             attn::AttentionBackend& backend, attn::AttentionContext actx, ForwardProfile* profile) {
  const BlockWeights& w = w_.blocks[size_t(layer)];
  const int64_t D = cfg_.dim, F = cfg_.ffn_dim, N = layout_.tokens(), BN = int64_t(batch) * N;
  const int NH = cfg_.num_heads, Dh = cfg_.head_dim();
  const int64_t L = cfg_.ctx_len;
  double* lin = profile ? &profile->linear_seconds : nullptr;

  // Modulation rows (B, 6, D): shift_sa, scale_sa, gate_sa, shift_ffn, scale_ffn, gate_ffn.
  Tensor mod({int64_t(batch), 6, D});
  for (int64_t i = 0; i < mod.size(); ++i) mod[i] = w.modulation[i % (6 * D)] + e0[i];
  auto m = [&](int b, int row) { return mod.data() + (int64_t(b) * 6 + row) * D; };

  // Self-attention.
  a_.reset({batch, N, D});
  for (int b = 0; b < batch; ++b)
    ops::layer_norm_modulate(x_.data() + b * N * D, N, D, cfg_.eps, m(b, 0), m(b, 1), a_.data() + b * N * D);
  qkv_.reset({BN, 3 * D});
  timed(lin, [&] {
    qkv_weights_[size_t(layer)].apply(a_.data(), BN, qkv_.data());
  });
  q_.reset({int64_t(batch) * NH, N, Dh});
  k_.reset({int64_t(batch) * NH, N, Dh});
  v_.reset({int64_t(batch) * NH, N, Dh});
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < BN; ++r) {
    float* row = qkv_.data() + r * 3 * D;
    ops::rms_norm_row(row, D, cfg_.eps, w.sa_norm_q.data(), row);
    ops::rms_norm_row(row + D, D, cfg_.eps, w.sa_norm_k.data(), row + D);
    const int64_t b = r / N, i = r % N;
    for (int h = 0; h < NH; ++h) {
      const int64_t dst = ((b * NH + h) * N + i) * Dh;
      rope_.apply(row + h * Dh, i, q_.data() + dst);
      rope_.apply(row + D + h * Dh, i, k_.data() + dst);
      std::memcpy(v_.data() + dst, row + 2 * D + h * Dh, sizeof(float) * size_t(Dh));
    }
  }
  attn_.reset({int64_t(batch) * NH, N, Dh});
  attn::AttentionInputs in;
  in.q = q_.data(), in.k = k_.data(), in.v = v_.data();
  in.batch = batch, in.heads = NH, in.tokens = N, in.head_dim = Dh, in.layout = &layout_;
  attn::AttendReport report;
  timed(profile ? &profile->attention_seconds : nullptr, [&] { report = backend.attend(in, attn_.data(), actx); });
  if (profile) profile->add_density(layer, report.density);
  ops::move_heads(attn_.data(), a_.data(), batch, N, NH, Dh, false);
  y_.reset({BN, D});
  timed(lin, [&] { w.sa_o.apply(a_.data(), BN, y_.data()); });
  for (int b = 0; b < batch; ++b) ops::gated_add(x_.data() + b * N * D, y_.data() + b * N * D, m(b, 2), N, D);

  // Cross-attention to the context tokens (no RoPE, no mask, no gate).
  Tensor ck({int64_t(batch), L, D}), cv({int64_t(batch), L, D});
  w.ca_k.apply(ctx.data(), batch * L, ck.data());
  ops::rms_norm(ck.data(), batch * L, D, cfg_.eps, w.ca_norm_k.data(), ck.data());
  w.ca_v.apply(ctx.data(), batch * L, cv.data());
  ops::layer_norm(x_.data(), BN, D, cfg_.eps, w.norm3_w.data(), w.norm3_b.data(), a_.data());
  timed(lin, [&] { w.ca_q.apply(a_.data(), BN, y_.data()); });
  ops::rms_norm(y_.data(), BN, D, cfg_.eps, w.ca_norm_q.data(), y_.data());
  // The kernel takes heads contiguous: q (B*NH, N, Dh), k and v (B*NH, L, Dh); dense, no mask.
  ops::move_heads(y_.data(), q_.data(), batch, N, NH, Dh, true);
  Tensor ckh({int64_t(batch) * NH, L, Dh}), cvh({int64_t(batch) * NH, L, Dh});
  ops::move_heads(ck.data(), ckh.data(), batch, L, NH, Dh, true);
  ops::move_heads(cv.data(), cvh.data(), batch, L, NH, Dh, true);
  attn::AttentionCall cross;
  cross.q = q_.data(), cross.k = ckh.data(), cross.v = cvh.data(), cross.out = attn_.data();
  cross.heads = batch * NH, cross.q_len = N, cross.kv_len = L, cross.head_dim = Dh;
  cross_kernel_.run(cross);
  ops::move_heads(attn_.data(), a_.data(), batch, N, NH, Dh, false);
  timed(lin, [&] { w.ca_o.apply(a_.data(), BN, y_.data()); });
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < BN * D; ++i) x_[i] += y_[i];

  // Feed-forward.
  for (int b = 0; b < batch; ++b)
    ops::layer_norm_modulate(x_.data() + b * N * D, N, D, cfg_.eps, m(b, 3), m(b, 4), a_.data() + b * N * D);
  hidden_.reset({BN, F});
  timed(lin, [&] { w.ffn0.apply(a_.data(), BN, hidden_.data()); });
  ops::gelu_tanh(hidden_.data(), hidden_.size());
  timed(lin, [&] { w.ffn2.apply(hidden_.data(), BN, y_.data()); });
  for (int b = 0; b < batch; ++b) ops::gated_add(x_.data() + b * N * D, y_.data() + b * N * D, m(b, 5), N, D);
}

}  // namespace ditgen
