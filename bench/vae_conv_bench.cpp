// The Wan VAE decoder's convolutions at 480 x 832 (vae/conv.h), each against the GEMM of the
// same shape (pixels x K by K x Cout, no gather) and the square GEMM ceiling, in float32 and
// bf16, in one run. The end-to-end decode is bench/vae_decode (bench/RESULTS.md).
//   vae_conv_bench --benchmark_filter=Conv --benchmark_repetitions=3
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "dit/gemm.h"
#include "dit/gemm_bf16.h"
#include "vae/conv.h"

namespace {

using namespace ditgen;

std::vector<float> randn(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}

// Args: cin, cout, kt, kh (= kw), input h, input w, upsample, bf16.
vae::ConvWeights weights(benchmark::State& s) {
  const int cin = int(s.range(0)), cout = int(s.range(1)), kt = int(s.range(2)), k = int(s.range(3));
  const std::vector<float> w = randn(size_t(cout) * cin * kt * k * k, 1), b = randn(size_t(cout), 2);
  vae::ConvWeights c = vae::ConvWeights::from_torch(w.data(), b.data(), cout, cin, kt, k, k);
  if (s.range(7)) c.pack_bf16();
  return c;
}

void BM_Conv(benchmark::State& s) {
  if (s.range(7) && !gemm::bf16_gemm_available()) return s.SkipWithError("no AVX-512 BF16");
  const vae::ConvWeights w = weights(s);
  const vae::ConvGeometry g = vae::ConvGeometry::same(int(s.range(4)), int(s.range(5)), w.kh, int(s.range(6)));
  std::vector<std::vector<float>> frames;
  std::vector<const float*> in;
  for (int t = 0; t < w.kt; ++t) {
    frames.push_back(randn(size_t(g.in_h) * g.in_w * w.cin, 3 + t));
    in.push_back(frames.back().data());
  }
  // bf16: the frames stored as bf16, as the decoder keeps them.
  std::vector<std::vector<uint16_t>> bits;
  std::vector<const uint16_t*> in_bits;
  for (const auto& f : frames) {
    bits.emplace_back(f.size());
    if (w.is_bf16()) gemm::to_bf16(f.data(), int64_t(f.size()), bits.back().data());
    in_bits.push_back(bits.back().data());
  }
  std::vector<float> out(size_t(g.out_h) * g.out_w * w.cout);
  for (auto _ : s) {
    if (w.is_bf16())
      vae::conv_frame(w, in_bits.data(), g, out.data());
    else
      vae::conv_frame(w, in.data(), g, out.data());
    benchmark::DoNotOptimize(out.data());
  }
  const double flops = 2.0 * double(g.out_h) * g.out_w * double(w.k()) * w.cout;
  s.counters["GFLOPs"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  s.SetLabel(s.range(7) ? "bf16" : "float32");
}

// The GEMM alone at the conv's shape: rows = output pixels, K = taps x Cin, N = Cout.
void BM_GemmOfConv(benchmark::State& s) {
  if (s.range(7) && !gemm::bf16_gemm_available()) return s.SkipWithError("no AVX-512 BF16");
  const vae::ConvWeights w = weights(s);
  const int64_t rows = s.range(4) * s.range(5) * s.range(6) * s.range(6);
  const std::vector<float> x = randn(size_t(rows * w.k()), 3);
  std::vector<float> y(size_t(rows * w.cout));
  for (auto _ : s) {
    if (w.is_bf16())
      gemm::matmul_nt_packed(x.data(), rows, w.packed, y.data());
    else
      gemm::matmul_nt(gemm::active_backend(), x.data(), rows, w.k(), w.w.data(), w.cout, y.data());
    benchmark::DoNotOptimize(y.data());
  }
  const double flops = 2.0 * double(rows) * double(w.k()) * w.cout;
  s.counters["GFLOPs"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  s.SetLabel(s.range(7) ? "bf16" : "float32");
}

// The decoder's conv shapes at 480 x 832 (latent 60 x 104): stage by stage, heaviest first.
void shapes(benchmark::internal::Benchmark* b) {
  for (int bf16 : {1, 0}) {
    b->Args({96, 96, 3, 3, 480, 832, 1, bf16});    // stage 3 residual convs (6 a frame)
    b->Args({192, 96, 1, 3, 240, 416, 2, bf16});   // upsample2d: nearest x2 + 3 x 3 to 96
    b->Args({192, 192, 3, 3, 240, 416, 1, bf16});  // stage 2 residual convs
    b->Args({384, 384, 3, 3, 120, 208, 1, bf16});  // stage 1 residual convs
    b->Args({96, 3, 3, 3, 480, 832, 1, bf16});     // the head: 96 to RGB
  }
  b->Unit(benchmark::kMillisecond)->UseRealTime()->MeasureProcessCPUTime();
}
BENCHMARK(BM_Conv)->Apply(shapes);
BENCHMARK(BM_GemmOfConv)->Apply(shapes);

// The ceiling: a square 2048³ GEMM in the same run.
void BM_Ceiling(benchmark::State& s) {
  const int64_t n = 2048;
  const std::vector<float> x = randn(size_t(n * n), 1), W = randn(size_t(n * n), 2);
  std::vector<float> y(size_t(n * n));
  const gemm::PackedBF16 p = s.range(0) ? gemm::PackedBF16::pack(W.data(), n, n) : gemm::PackedBF16();
  for (auto _ : s) {
    if (s.range(0))
      gemm::matmul_nt_packed(x.data(), n, p, y.data());
    else
      gemm::matmul_nt(gemm::active_backend(), x.data(), n, n, W.data(), n, y.data());
    benchmark::DoNotOptimize(y.data());
  }
  s.counters["GFLOPs"] = benchmark::Counter(2.0 * n * n * n * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  s.SetLabel(s.range(0) ? "bf16" : "float32");
}
BENCHMARK(BM_Ceiling)->Arg(1)->Arg(0)->Unit(benchmark::kMillisecond)->UseRealTime()->MeasureProcessCPUTime();

}  // namespace

BENCHMARK_MAIN();
