// Google Benchmark sweeps of the flash-attention kernel: ISA paths, head dims, block sizes and
// block densities at moderate sizes. The headline figures (against the GEMM ceiling, in one
// run) come from `ditgen bench attention`; see bench/RESULTS.md.
//   attention_bench --benchmark_filter=Dense
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "attention/kernel/block_map.h"
#include "attention/kernel/kernel.h"
#include "attention/mask/mask.h"

namespace {

using namespace ditgen::attn;

struct Data {
  std::vector<float> q, k, v, out;
  Data(int heads, int64_t n, int d) : q(size_t(heads) * n * d), k(q.size()), v(q.size()), out(q.size()) {
    std::mt19937_64 rng(1);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    for (auto* x : {&q, &k, &v})
      for (auto& y : *x) y = nd(rng);
  }
};

const Isa kIsas[] = {Isa::Portable, Isa::Avx2, Isa::Avx512, Isa::Avx512Bf16};

// Args: tokens, head_dim, block, isa index, density in percent (100 = dense).
void BM_Attention(benchmark::State& state) {
  const int64_t n = state.range(0);
  const int d = int(state.range(1)), block = int(state.range(2));
  const Isa isa = kIsas[state.range(3)];
  const double density = double(state.range(4)) / 100.0;
  if (!isa_supported(isa)) {
    state.SkipWithError("ISA not supported on this CPU");
    return;
  }
  const int heads = 2;
  Data x(heads, n, d);
  const BlockMap m = density >= 1.0 ? BlockMap::dense(n, block) : random_block_map(n, block, density, 2);
  for (auto _ : state) {
    AttentionKernel({isa}).run(self_attention(x.q.data(), x.k.data(), x.v.data(), x.out.data(), heads, n, d, &m));
    benchmark::DoNotOptimize(x.out.data());
  }
  const double flops = 4.0 * double(n) * double(n) * d * heads * m.pair_density();
  state.counters["GFLOPs"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["pair_density"] = m.pair_density();
  state.SetLabel(isa_name(isa));
}

void dense_args(benchmark::internal::Benchmark* b) {
  for (int isa = 0; isa < 4; ++isa)
    for (int d : {64, 128}) b->Args({4096, d, 64, isa, 100});
  for (int d : {64, 128}) b->Args({4096, d, 128, 2, 100});
  b->Args({4000, 64, 64, 2, 100});  // not a block multiple
  b->Args({4096, 80, 64, 2, 100});  // generic head dim
}
void sparse_args(benchmark::internal::Benchmark* b) {
  for (int isa : {2, 3})
    for (int pct : {50, 25, 12, 6}) b->Args({8192, 64, 64, isa, pct});
  for (int pct : {50, 25, 12, 6}) b->Args({8192, 128, 128, 2, pct});
}

BENCHMARK(BM_Attention)->Name("Dense")->Apply(dense_args)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Attention)->Name("Sparse")->Apply(sparse_args)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
