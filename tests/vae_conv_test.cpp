// The VAE's convolutions (vae/conv.h), both backends (im2col + GEMM; oneDNN where built in)
// against the direct twin: fresh random inputs,
// every geometry the Wan VAE uses (3³ causal, (3,1,1) temporal, 1³ pointwise, nearest x2 then
// 3 x 3, stride-2 with right/bottom pad), odd and one-pixel sizes, missing (zero) frames, float32
// through each GEMM backend here and packed bf16. Tolerances: 1e-5 relative to the largest
// output for float32 (float sums against double); 1e-4 for bf16, whose inputs both sides round
// identically, so only the summation order differs. With im2col the bf16 overload (frames stored
// as bf16) must equal the float one bit for bit on wide outputs, and its direct narrow kernel the
// twin within 1e-4; oneDNN's bf16 overload the twin within 1e-4.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "dit/gemm.h"
#include "dit/gemm_bf16.h"
#include "vae/conv.h"
#include "vae/conv_dnnl.h"

namespace ditgen::vae {
namespace {

struct Case {
  int cin, cout, kt, k;
  int h, w;
  int upsample;
  bool down;
  bool missing_first;  // the oldest frame is the causal zero padding
};

ConvWeights random_weights(const Case& c, std::mt19937& rng) {
  std::normal_distribution<float> n(0.0f, 1.0f);
  std::vector<float> w(size_t(c.cout) * c.cin * c.kt * c.k * c.k), b(size_t(c.cout));
  for (float& v : w) v = n(rng) / std::sqrt(float(c.cin * c.kt * c.k * c.k));
  for (float& v : b) v = 0.1f * n(rng);
  return ConvWeights::from_torch(w.data(), b.data(), c.cout, c.cin, c.kt, c.k, c.k);
}

double max_rel(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num = std::max(num, std::fabs(double(a[i]) - b[i]));
    den = std::max(den, std::fabs(double(b[i])));
  }
  return num / den;
}

void check(const Case& c, bool bf16, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0.0f, 1.0f);
  ConvWeights w = random_weights(c, rng);
  if (bf16) w.pack_bf16();
  std::vector<std::vector<float>> frames(size_t(c.kt), std::vector<float>(size_t(c.h) * c.w * c.cin));
  std::vector<const float*> in;
  for (size_t t = 0; t < frames.size(); ++t) {
    for (float& v : frames[t]) v = n(rng);
    in.push_back(c.missing_first && t == 0 && c.kt > 1 ? nullptr : frames[t].data());
  }
  const ConvGeometry g = c.down ? ConvGeometry::down2(c.h, c.w, c.k) : ConvGeometry::same(c.h, c.w, c.k, c.upsample);
  std::vector<float> fast(size_t(g.out_h) * g.out_w * c.cout, NAN), ref(fast.size(), NAN);
  conv_frame(w, in.data(), g, fast.data());
  conv_frame_ref(w, in.data(), g, ref.data());
  for (float v : fast) ASSERT_TRUE(std::isfinite(v));
  EXPECT_LT(max_rel(fast, ref), bf16 ? 1e-4 : 1e-5)
      << "cin " << c.cin << " cout " << c.cout << " kt " << c.kt << " k " << c.k << " " << c.h << "x" << c.w
      << " up " << c.upsample << " down " << c.down << (bf16 ? " bf16" : " f32");
  if (!bf16) return;
  // The same frames stored as bf16: the wide path is the float one's GEMM on the same bits;
  // narrow outputs run the direct kernel.
  std::vector<std::vector<uint16_t>> bits;
  std::vector<const uint16_t*> in_bits;
  for (size_t t = 0; t < frames.size(); ++t) {
    bits.emplace_back(frames[t].size());
    gemm::to_bf16(frames[t].data(), int64_t(frames[t].size()), bits.back().data());
    in_bits.push_back(in[t] ? bits.back().data() : nullptr);
  }
  std::vector<float> from_bits(fast.size(), NAN);
  conv_frame(w, in_bits.data(), g, from_bits.data());
  if (c.cout > kNarrowOutputs && conv_backend() == ConvBackend::im2col)
    EXPECT_EQ(from_bits, fast) << "cin " << c.cin << " cout " << c.cout << ": bf16 frames";
  else
    EXPECT_LT(max_rel(from_bits, ref), 1e-4) << "cin " << c.cin << " cout " << c.cout << ": bf16 frames";
}

// Runs `body` under each backend this build has, restoring the default after.
template <class F>
void each_conv_backend(F body) {
  const ConvBackend before = conv_backend();
  std::vector<ConvBackend> backends = {ConvBackend::im2col};
  if (dnnl_available()) backends.push_back(ConvBackend::onednn);
  for (ConvBackend b : backends) {
    set_conv_backend(b);
    SCOPED_TRACE(b == ConvBackend::onednn ? "onednn" : "im2col");
    body();
  }
  set_conv_backend(before);
}

const std::vector<Case> kCases = {
    {8, 12, 3, 3, 5, 7, 1, false, true},    // causal 3³, first frame padding
    {8, 12, 3, 3, 5, 7, 1, false, false},
    {16, 16, 3, 1, 4, 6, 1, false, true},   // upsample3d's time_conv (3, 1, 1)
    {12, 6, 1, 3, 3, 5, 2, false, false},   // nearest x2 then 3 x 3 to half the channels
    {6, 6, 1, 3, 8, 10, 1, true, false},    // downsample: pad right/bottom, stride 2
    {6, 6, 1, 3, 7, 9, 1, true, false},     // odd sides
    {5, 7, 1, 1, 4, 4, 1, false, false},    // pointwise (shortcut, attention projections)
    {3, 4, 3, 3, 1, 1, 1, false, true},     // one pixel
    {40, 24, 3, 3, 70, 130, 1, false, false},  // more pixels than one gathered tile
    {7, 20, 3, 3, 5, 6, 1, false, true},    // odd K: the last pair's padding
    {33, 3, 3, 3, 6, 9, 1, false, true},    // the RGB head's shape: narrow, a partial 32-run
    {70, 8, 1, 3, 4, 5, 2, false, false},   // narrow after nearest x2
};

TEST(VaeConv, MatchesReferenceFloat32EveryBackend) {
  std::vector<gemm::Backend> backends = {gemm::Backend::eigen};
  if (gemm::openblas_available()) backends.push_back(gemm::Backend::openblas);
  const gemm::Backend before = gemm::active_backend();
  unsigned seed = std::random_device{}();
  for (gemm::Backend b : backends) {
    gemm::set_backend(b);
    each_conv_backend([&] {
      for (const Case& c : kCases) check(c, false, seed++);
    });
  }
  gemm::set_backend(before);
}

TEST(VaeConv, MatchesReferenceBf16) {
  if (!gemm::bf16_gemm_available()) GTEST_SKIP() << "no AVX-512 BF16 on this CPU";
  unsigned seed = std::random_device{}();
  each_conv_backend([&] {
    for (const Case& c : kCases) check(c, true, seed++);
  });
}

TEST(VaeConv, BackendsAgreeOnRepeatedCallsAndGeometries) {
  // oneDNN keeps a plan per geometry with the weights: the same weights at two sizes, called
  // alternately, must give what the other backend gives each time.
  if (!dnnl_available()) GTEST_SKIP() << "built without oneDNN";
  std::mt19937 rng(std::random_device{}());
  std::normal_distribution<float> n(0.0f, 1.0f);
  const Case c{16, 24, 3, 3, 6, 9, 1, false, false};
  ConvWeights w = random_weights(c, rng);
  for (int round = 0; round < 2; ++round)
    for (const auto& [h, wd] : {std::pair{6, 9}, std::pair{11, 4}}) {
      std::vector<std::vector<float>> frames(3, std::vector<float>(size_t(h) * wd * c.cin));
      std::vector<const float*> in;
      for (auto& f : frames) {
        for (float& v : f) v = n(rng);
        in.push_back(f.data());
      }
      in[0] = round ? nullptr : in[0];
      const ConvGeometry g = ConvGeometry::same(h, wd, 3);
      std::vector<float> a(size_t(h) * wd * c.cout), b(a.size());
      set_conv_backend(ConvBackend::onednn);
      conv_frame(w, in.data(), g, a.data());
      set_conv_backend(ConvBackend::im2col);
      conv_frame(w, in.data(), g, b.data());
      EXPECT_LT(max_rel(a, b), 1e-5) << h << "x" << wd << " round " << round;
    }
  set_conv_backend(ConvBackend::onednn);
}

TEST(VaeConv, GeometryOfWanResampling) {
  const ConvGeometry up = ConvGeometry::same(60, 104, 3, 2);
  EXPECT_EQ(up.out_h, 120);
  EXPECT_EQ(up.out_w, 208);
  const ConvGeometry down = ConvGeometry::down2(480, 832, 3);
  EXPECT_EQ(down.out_h, 240);
  EXPECT_EQ(down.out_w, 416);
  EXPECT_EQ(down.pad_top, 0);
}

}  // namespace
}  // namespace ditgen::vae
