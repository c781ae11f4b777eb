// Each fast layer of the DiT block against its plain twin on fresh random inputs.
#include <gtest/gtest.h>

#include <cstring>
#include <limits>

#include "dit/gemm.h"
#include "dit/gemm_bf16.h"
#include "core/layout.h"
#include "dit/ops.h"
#include "dit/rope.h"
#include "core/tensor.h"
#include "tests/test_util.h"

namespace ditgen {
namespace {

using test::fresh_rng;
using test::nmse;
using test::random_vector;

struct LinearCase {
  int64_t rows, in, out;
};

// The largest |y - ref| of a linear layer's outputs, each divided by its worst-case error bound
// per_term * (|b| + sum_k |x_k w_k|): at most 1 for a correct kernel on any input, so a short dot
// product whose terms cancel cannot fail it by chance the way a relative error could.
double worst_linear_error(const LinearCase& c, const std::vector<float>& x, const std::vector<float>& w,
                          const std::vector<float>& b, const std::vector<float>& y, const std::vector<float>& ref,
                          double per_term) {
  double worst = 0;
  for (int64_t i = 0; i < c.rows; ++i)
    for (int64_t o = 0; o < c.out; ++o) {
      double mag = b.empty() ? 0.0 : std::fabs(double(b[size_t(o)]));
      for (int64_t k = 0; k < c.in; ++k) mag += std::fabs(double(x[size_t(i * c.in + k)]) * w[size_t(o * c.in + k)]);
      const size_t at = size_t(i * c.out + o);
      worst = std::max(worst, std::fabs(double(y[at]) - ref[at]) / (per_term * mag + 1e-30));
    }
  return worst;
}

// Every float32 GEMM backend this machine has (Eigen always; OpenBLAS where its library loads);
// bf16 rounds its inputs and has its own tests below.
std::vector<gemm::Backend> available_backends() {
  std::vector<gemm::Backend> out{gemm::Backend::eigen};
  if (gemm::openblas_available()) out.push_back(gemm::Backend::openblas);
  return out;
}

TEST(Tensor, CopiesKeepShapeAndValues) {
  const Tensor empty;
  const Tensor e2 = empty;  // no storage: copied without reading any element
  EXPECT_EQ(e2.size(), 0);
  EXPECT_EQ(e2.rank(), 0);
  Tensor a({2, 3});
  for (int64_t i = 0; i < a.size(); ++i) a[i] = float(i) * 0.5f;
  Tensor b = a;
  EXPECT_EQ(b.shape(), a.shape());
  for (int64_t i = 0; i < a.size(); ++i) EXPECT_EQ(b[i], a[i]);
  b = empty;
  EXPECT_EQ(b.size(), 0);
  EXPECT_EQ(b.rank(), 0);
  const Tensor zero({0, 4});
  b = zero;
  EXPECT_EQ(b.shape(), (std::vector<int64_t>{0, 4}));
  EXPECT_EQ(b.size(), 0);
}

TEST(Ops, LinearMatchesReference) {
  auto rng = fresh_rng();
  const gemm::Backend before = gemm::active_backend();
  for (gemm::Backend backend : available_backends()) {
  gemm::set_backend(backend);
  // Edge sizes: one row, odd sizes, model shapes.
  for (LinearCase c : {LinearCase{1, 1, 1}, LinearCase{1, 7, 3}, LinearCase{37, 19, 23}, LinearCase{256, 256, 768},
                       LinearCase{129, 768, 256}}) {
    auto x = random_vector(size_t(c.rows * c.in), rng), w = random_vector(size_t(c.out * c.in), rng),
         b = random_vector(size_t(c.out), rng);
    std::vector<float> y(size_t(c.rows * c.out)), r(y.size());
    ops::linear(x.data(), c.rows, c.in, w.data(), b.data(), c.out, y.data());
    ops::linear_ref(x.data(), c.rows, c.in, w.data(), b.data(), c.out, r.data());
    // float32 accumulation against double: each rounding moves the sum by at most 2^-24 of the
    // magnitude summed; (in + 2) of them, doubled for any summation order.
    EXPECT_LE(worst_linear_error(c, x, w, b, y, r, double(c.in + 2) * std::ldexp(1.0, -23)), 1.0)
        << gemm::backend_name(backend) << ": rows " << c.rows << " in " << c.in << " out " << c.out;
  }
  }
  gemm::set_backend(before);
}

TEST(Ops, GemmBackendNames) {
  for (const char* name : {"auto", "eigen", "openblas", "bf16"})
    EXPECT_EQ(gemm::backend_name(gemm::parse_backend(name)), name);
  EXPECT_THROW(gemm::parse_backend("mkl"), std::invalid_argument);
  EXPECT_NE(gemm::active_backend(), gemm::Backend::automatic);
}

// True where the bf16 kernel cannot run (no AVX-512 BF16 in the CPU or the compiler), after
// checking that asking for it then fails cleanly.
bool bf16_missing() {
  if (gemm::bf16_gemm_available()) return false;
  EXPECT_THROW(gemm::set_backend(gemm::Backend::bf16), std::invalid_argument);
  return true;
}
constexpr const char* kNoBf16 = "no AVX-512 BF16 on this CPU (or the compiler lacks -mavx512bf16)";

TEST(Gemm, Bf16KernelMatchesItsReference) {
  if (bf16_missing()) GTEST_SKIP() << kNoBf16;
  auto rng = fresh_rng();
  std::vector<LinearCase> cases;
  // Edge sizes around the 6-row micro-tile, the 16-lane groups, the 64-output panels and odd K;
  // the long-K cases take several row blocks, the longest two K passes.
  for (int64_t rows : {1, 7, 63, 65, 257})
    for (int64_t in : {1, 2, 3, 17, 64, 255, 256, 768})
      for (int64_t out : {1, 15, 16, 17, 48, 255, 256, 768}) cases.push_back({rows, in, out});
  cases.push_back({100, 3071, 33});
  cases.push_back({131, 1537, 97});
  cases.push_back({37, 4099, 70});
  for (LinearCase c : cases) {
    auto x = random_vector(size_t(c.rows * c.in), rng), w = random_vector(size_t(c.out * c.in), rng);
    std::vector<float> y(size_t(c.rows * c.out)), r(y.size());
    gemm::matmul_nt_bf16(x.data(), c.rows, c.in, w.data(), c.out, y.data());
    gemm::matmul_nt_bf16_ref(x.data(), c.rows, c.in, w.data(), c.out, r.data());
    // Both round the inputs alike; only float32 against double accumulation (and its order)
    // differs: at most (in + 2) * 2^-23 of the magnitude summed, and 1e-5 for short sums.
    const double worst = worst_linear_error(c, x, w, {}, y, r, std::max(1e-5, double(c.in + 2) * std::ldexp(1.0, -23)));
    EXPECT_LE(worst, 1.0) << "rows " << c.rows << " in " << c.in << " out " << c.out;
  }
}

TEST(Gemm, PackedBf16LayoutRoundTrips) {
  // Portable: packing from float32 and from bf16 bits give the same panels, and unpacking gives
  // each weight as round_bf16 makes it (edge sizes around the 64-output panels and odd K).
  auto rng = fresh_rng();
  for (int64_t in : {1, 2, 3, 17, 64, 129})
    for (int64_t out : {1, 15, 63, 64, 65, 130}) {
      const auto w = random_vector(size_t(out * in), rng);
      std::vector<uint16_t> bits(w.size());
      for (size_t i = 0; i < w.size(); ++i) bits[i] = uint16_t(float_bits(gemm::round_bf16(w[i])) >> 16);
      const gemm::PackedBF16 a = gemm::PackedBF16::pack(w.data(), in, out), b = gemm::PackedBF16::pack(bits.data(), in, out);
      ASSERT_EQ(a.bytes(), b.bytes());
      EXPECT_EQ(std::memcmp(a.data(), b.data(), size_t(a.bytes())), 0) << "in " << in << " out " << out;
      std::vector<float> back(w.size());
      a.unpack(back.data());
      for (size_t i = 0; i < w.size(); ++i) ASSERT_EQ(back[i], gemm::round_bf16(w[i])) << "in " << in << " out " << out;
      const gemm::PackedBF16 copy = a;
      EXPECT_EQ(std::memcmp(copy.data(), a.data(), size_t(a.bytes())), 0);
    }
}

TEST(Gemm, PackedBf16KernelEqualsPerCallPacking) {
  if (bf16_missing()) GTEST_SKIP() << kNoBf16;
  auto rng = fresh_rng();
  for (LinearCase c : {LinearCase{1, 1, 1}, LinearCase{7, 3, 17}, LinearCase{65, 255, 63}, LinearCase{257, 768, 130},
                       LinearCase{100, 3071, 33}, LinearCase{37, 4099, 70}}) {
    auto x = random_vector(size_t(c.rows * c.in), rng), w = random_vector(size_t(c.out * c.in), rng);
    std::vector<float> y(size_t(c.rows * c.out)), p(y.size()), r(y.size());
    const gemm::PackedBF16 W = gemm::PackedBF16::pack(w.data(), c.in, c.out);
    gemm::matmul_nt_bf16(x.data(), c.rows, c.in, w.data(), c.out, y.data());
    gemm::matmul_nt_packed(x.data(), c.rows, W, p.data());
    gemm::matmul_nt_packed_ref(x.data(), c.rows, W, r.data());
    // The same panels through the same kernel: bit-identical to packing per call.
    EXPECT_EQ(std::memcmp(y.data(), p.data(), y.size() * sizeof(float)), 0) << "rows " << c.rows << " in " << c.in;
    // X given as bf16 pairs (to_bf16, a zero after an odd last value): bit-identical again.
    std::vector<uint16_t> bits(size_t(c.rows * W.pairs() * 2), 0xFFFF);
    for (int64_t r0 = 0; r0 < c.rows; ++r0) {
      gemm::to_bf16(x.data() + r0 * c.in, c.in, bits.data() + r0 * W.pairs() * 2);
      if (c.in % 2) bits[size_t(r0 * W.pairs() * 2 + c.in)] = 0;
    }
    std::vector<uint32_t> pairs(size_t(c.rows * W.pairs()));
    std::memcpy(pairs.data(), bits.data(), pairs.size() * sizeof(uint32_t));
    std::vector<float> q(y.size());
    gemm::matmul_pairs_packed(pairs.data(), c.rows, W, q.data());
    EXPECT_EQ(std::memcmp(q.data(), p.data(), y.size() * sizeof(float)), 0) << "pairs: rows " << c.rows << " in " << c.in;
    const double worst = worst_linear_error(c, x, w, {}, p, r, std::max(1e-5, double(c.in + 2) * std::ldexp(1.0, -23)));
    EXPECT_LE(worst, 1.0) << "rows " << c.rows << " in " << c.in << " out " << c.out;
  }
}

TEST(Gemm, Bf16LinearIsCloseToFloat32) {
  if (bf16_missing()) GTEST_SKIP() << kNoBf16;
  auto rng = fresh_rng();
  const gemm::Backend before = gemm::active_backend();
  gemm::set_backend(gemm::Backend::bf16);
  EXPECT_EQ(gemm::active_backend(), gemm::Backend::bf16);
  for (LinearCase c : {LinearCase{1, 1, 1}, LinearCase{1, 7, 3}, LinearCase{37, 19, 23}, LinearCase{256, 256, 768},
                       LinearCase{129, 768, 256}, LinearCase{300, 3072, 50}}) {
    auto x = random_vector(size_t(c.rows * c.in), rng), w = random_vector(size_t(c.out * c.in), rng),
         b = random_vector(size_t(c.out), rng);
    std::vector<float> y(size_t(c.rows * c.out)), r(y.size());
    ops::linear(x.data(), c.rows, c.in, w.data(), b.data(), c.out, y.data());
    ops::linear_ref(x.data(), c.rows, c.in, w.data(), b.data(), c.out, r.data());
    // Worst case per output: rounding to bfloat16 (8 significant bits, unit roundoff 2^-8) moves
    // each product x*w by at most 2^-7 relative, and float32 accumulation adds up to (in+2)*2^-24.
    const double per_term = 1.01 * std::ldexp(1.0, -7) + double(c.in + 2) * std::ldexp(1.0, -23);
    EXPECT_LE(worst_linear_error(c, x, w, b, y, r, per_term), 1.0) << "rows " << c.rows << " in " << c.in << " out " << c.out;
    // On average the errors are far smaller: independent rounding errors of about 2.3e-3 rms per
    // product give an NMSE near 5e-6 (5.5e-6 measured). Checked only where the sum has enough
    // terms and outputs for that average to hold: 1e-4 leaves room without hiding a real error.
    if (c.in >= 256) {
      EXPECT_LT(nmse(y.data(), r.data(), y.size()), 1e-4) << "rows " << c.rows << " in " << c.in << " out " << c.out;
    }
  }
  gemm::set_backend(before);
}

TEST(Ops, NormsMatchReference) {
  auto rng = fresh_rng();
  for (int64_t width : {1, 6, 64, 257}) {
    const int64_t rows = 33;
    auto x = random_vector(size_t(rows * width), rng, 3.0f), w = random_vector(size_t(width), rng),
         b = random_vector(size_t(width), rng);
    for (auto& v : x) v += 2.0f;  // a non-zero mean exercises the centring
    std::vector<float> y(x.size()), r(x.size());
    ops::layer_norm(x.data(), rows, width, 1e-6, w.data(), b.data(), y.data());
    ops::layer_norm_ref(x.data(), rows, width, 1e-6, w.data(), b.data(), r.data());
    EXPECT_LT(nmse(y.data(), r.data(), y.size()), 1e-10) << "layer_norm width " << width;
    ops::layer_norm(x.data(), rows, width, 1e-6, nullptr, nullptr, y.data());
    ops::layer_norm_ref(x.data(), rows, width, 1e-6, nullptr, nullptr, r.data());
    EXPECT_LT(nmse(y.data(), r.data(), y.size()), 1e-10) << "layer_norm (no affine) width " << width;
    ops::rms_norm(x.data(), rows, width, 1e-6, w.data(), y.data());
    ops::rms_norm_ref(x.data(), rows, width, 1e-6, w.data(), r.data());
    EXPECT_LT(nmse(y.data(), r.data(), y.size()), 1e-10) << "rms_norm width " << width;
  }
}

TEST(Ops, ModulatedLayerNormIsLayerNormThenAffine) {
  auto rng = fresh_rng();
  const int64_t rows = 17, width = 40;
  auto x = random_vector(size_t(rows * width), rng), shift = random_vector(size_t(width), rng),
       scale = random_vector(size_t(width), rng);
  std::vector<float> y(x.size()), r(x.size()), one_plus(static_cast<size_t>(width));
  for (int64_t i = 0; i < width; ++i) one_plus[size_t(i)] = 1.0f + scale[size_t(i)];
  ops::layer_norm_modulate(x.data(), rows, width, 1e-6, shift.data(), scale.data(), y.data());
  ops::layer_norm_ref(x.data(), rows, width, 1e-6, one_plus.data(), shift.data(), r.data());
  EXPECT_LT(nmse(y.data(), r.data(), y.size()), 1e-10);
}

TEST(Ops, GeluTanhMatchesFormula) {
  auto rng = fresh_rng();
  auto x = random_vector(1000, rng, 4.0f);
  std::vector<float> y = x;
  ops::gelu_tanh(y.data(), int64_t(y.size()));
  for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(y[i], ops::gelu_tanh_ref(x[i]), 2e-6 * (1 + std::fabs(x[i])));
  // A dense sweep: the error stays below 1e-6 of the value (3e-7 from the exponential, a few
  // float roundings) plus what rounding the exponent w = 2z to float costs, |w| 2^-23 relative
  // (2^-21 allowed), including the far negative side where a 1 + tanh form would cancel; below
  // about u = -10 the exponent is clamped, so the output is u e^-88 (under 1e-37 |u|) rather than
  // the exact, even tinier value.
  std::vector<float> u;
  for (int i = -24000; i <= 24000; ++i) u.push_back(float(i) * 5e-4f);
  for (float v : {1e-30f, -1e-30f, 1e-7f, -1e-7f, 30.0f, -30.0f, 1e6f, -1e6f}) u.push_back(v);
  std::vector<float> g = u;
  ops::gelu_tanh(g.data(), int64_t(g.size()));
  double worst = 0;
  for (size_t i = 0; i < u.size(); ++i) {
    const double ref = ops::gelu_tanh_ref(u[i]);
    const double d = u[i], w = 2.0 * std::sqrt(2.0 / M_PI) * (d + 0.044715 * d * d * d);
    const double bound = (1e-6 + std::fabs(w) * std::ldexp(1.0, -21)) * std::fabs(ref) +
                         1e-37 * std::max(1.0, std::fabs(d));
    worst = std::max(worst, std::fabs(g[i] - ref) / bound);
  }
  EXPECT_LE(worst, 1.0);
  float nan = std::numeric_limits<float>::quiet_NaN();
  ops::gelu_tanh(&nan, 1);
  EXPECT_TRUE(std::isnan(nan));
  // Known values: GELU_tanh(0) = 0, GELU_tanh(1) = 0.8411920..., large negative -> 0.
  float k[3] = {0.0f, 1.0f, -10.0f};
  ops::gelu_tanh(k, 3);
  EXPECT_EQ(k[0], 0.0f);
  EXPECT_NEAR(k[1], 0.841192f, 1e-5);
  EXPECT_NEAR(k[2], 0.0f, 1e-6);
}

TEST(Rope, SplitAndInterleavingFollowTheModelDoc) {
  // Dh = 12: t gets 12 - 4*2 = 4 real dims (2 pairs), h and w 4 each (2 pairs each).
  DiTConfig cfg;
  cfg.dim = 24;
  cfg.num_heads = 2;
  ASSERT_EQ(cfg.rope_dims_t(), 4);
  ASSERT_EQ(cfg.rope_dims_hw(), 4);
  TokenLayout layout(3, 4, 5);
  Rope3D rope;
  rope.build(cfg, layout);
  auto rng = fresh_rng();
  for (int64_t i = 0; i < layout.tokens(); ++i) {
    const Coord c = layout.coord(i);
    auto x = random_vector(12, rng);
    std::vector<float> y(12);
    rope.apply(x.data(), i, y.data());
    // Independent expectation: pair k of axis with width 4 rotates by pos * theta^(-2j/4).
    const int pos[6] = {c.t, c.t, c.h, c.h, c.w, c.w};
    for (int k = 0; k < 6; ++k) {
      const int j = k % 2;
      const double angle = pos[k] * std::pow(10000.0, -2.0 * j / 4.0);
      const double e0 = x[2 * k] * std::cos(angle) - x[2 * k + 1] * std::sin(angle);
      const double e1 = x[2 * k] * std::sin(angle) + x[2 * k + 1] * std::cos(angle);
      EXPECT_NEAR(y[size_t(2 * k)], e0, 1e-5) << "token " << i << " pair " << k;
      EXPECT_NEAR(y[size_t(2 * k + 1)], e1, 1e-5) << "token " << i << " pair " << k;
    }
  }
}

TEST(Rope, ReadsCoordinatesFromTheLayout) {
  // The same token gets the same rotation whatever position a permuted layout stores it at.
  DiTConfig cfg;
  TokenLayout ident(2, 3, 4);
  std::vector<int32_t> rev(size_t(ident.tokens()));
  for (size_t i = 0; i < rev.size(); ++i) rev[i] = int32_t(rev.size() - 1 - i);
  TokenLayout reversed(2, 3, 4, rev, "reversed");
  Rope3D a, b;
  a.build(cfg, ident);
  b.build(cfg, reversed);
  auto rng = fresh_rng();
  auto x = random_vector(size_t(cfg.head_dim()), rng);
  std::vector<float> ya(x.size()), yb(x.size()), yr(x.size());
  for (int64_t n = 0; n < ident.tokens(); ++n) {
    a.apply(x.data(), n, ya.data());
    b.apply(x.data(), reversed.inverse()[size_t(n)], yb.data());
    rope_ref(cfg, ident.frame_major_coord(n), x.data(), yr.data());
    EXPECT_EQ(ya, yb) << "token " << n;
    EXPECT_LT(test::max_abs_diff(ya.data(), yr.data(), ya.size()), 1e-5) << "token " << n;
  }
}

TEST(Rope, RiflexTurnsOnlyTheChosenTemporalPairOncePerVideo) {
  // The default config: Dh = 64, 12 temporal pairs. RIFLEx k = 3 gives pair 2 the angle
  // 0.9 * 2pi * t / Tp; every other pair keeps its angle (bit for bit), for each k and Tp.
  DiTConfig cfg;
  ASSERT_EQ(cfg.rope_dims_t() / 2, 12);
  auto rng = fresh_rng();
  const int pairs = cfg.head_dim() / 2;
  for (int tp : {1, 5, 16}) {
    TokenLayout layout(tp, 2, 3);
    for (int k : {1, 3, 12}) {
      Rope3D plain, riflex;
      plain.build(cfg, layout);
      riflex.build(cfg, layout, RopeExtrapolation{k});
      for (int64_t i = 0; i < layout.tokens(); ++i) {
        const Coord c = layout.coord(i);
        auto x = random_vector(size_t(cfg.head_dim()), rng);
        std::vector<float> yp(x.size()), yx(x.size()), yr(x.size());
        plain.apply(x.data(), i, yp.data());
        riflex.apply(x.data(), i, yx.data());
        rope_ref(cfg, c, x.data(), yr.data(), RopeExtrapolation{k}, tp);
        EXPECT_LT(test::max_abs_diff(yx.data(), yr.data(), yx.size()), 1e-5) << "tp " << tp << " k " << k << " token " << i;
        for (int p = 0; p < pairs; ++p) {
          if (p == k - 1) {
            const double a = 0.9 * 2.0 * M_PI * c.t / tp;
            EXPECT_NEAR(yx[size_t(2 * p)], x[2 * p] * std::cos(a) - x[2 * p + 1] * std::sin(a), 1e-5);
            EXPECT_NEAR(yx[size_t(2 * p + 1)], x[2 * p] * std::sin(a) + x[2 * p + 1] * std::cos(a), 1e-5);
          } else {
            EXPECT_EQ(yx[size_t(2 * p)], yp[size_t(2 * p)]) << "pair " << p << " k " << k;
            EXPECT_EQ(yx[size_t(2 * p + 1)], yp[size_t(2 * p + 1)]) << "pair " << p << " k " << k;
          }
        }
      }
    }
  }
}

TEST(DitOps, MoveHeadsRoundTripsAndPutsEachHeadContiguous) {
  auto rng = fresh_rng();
  const int batch = 2, heads = 3, dh = 5;
  const int64_t n = 7;
  const auto x = random_vector(size_t(batch * n * heads * dh), rng);
  std::vector<float> h(x.size()), back(x.size(), NAN);
  ops::move_heads(x.data(), h.data(), batch, n, heads, dh, true);
  for (int b = 0; b < batch; ++b)
    for (int64_t i = 0; i < n; ++i)
      for (int hh = 0; hh < heads; ++hh)
        for (int c = 0; c < dh; ++c)
          ASSERT_EQ(h[size_t(((b * heads + hh) * n + i) * dh + c)], x[size_t((b * n + i) * heads * dh + hh * dh + c)]);
  ops::move_heads(h.data(), back.data(), batch, n, heads, dh, false);
  EXPECT_EQ(back, x);
}

}  // namespace
}  // namespace ditgen
