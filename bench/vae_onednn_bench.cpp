// Issue 19: the Wan VAE decoder's convolutions (vae/conv.h: im2col tiles + the project's GEMM)
// against oneDNN's convolution forward on the same frames, one output frame per call, in bf16
// (bf16 frames and weights, float32 sums and outputs) and float32, in one process and with the
// same OpenMP threads (the Debian oneDNN runs on libgomp, as the project does).
//
//   vae_onednn_bench [--repeats 7] [--dtype both|bf16|float32] [--shapes 1,2,...] [--threads N]
//
// Shapes are the decoder's at 480 x 832 (bench/vae_conv_bench.cpp's list, plus the middle's
// 384 -> 384 at 60 x 104 and the stage-1 upsample 384 -> 192). Per shape, three ways, timed in
// turn within each repeat so that load on a shared machine falls on all of them alike:
//   project   vae::conv_frame, called as bench/vae_conv_bench calls it (bf16 frames as bits);
//   dnnl 3d   one oneDNN convolution over the kt frames stored as one ndhwc tensor of depth kt
//             (depth padding 0, one output depth); a 2D nhwc convolution where kt = 1;
//   dnnl 2d+  kt oneDNN 2D nhwc convolutions, one per input frame, the 2nd and later adding
//             into the output (sum post-op): reads the frames where they lie, as the decoder's
//             causal caches keep them.
// Weights: oneDNN's own layout (format_tag::any), reordered once before timing; the bf16 weights
// are the very bf16 values the project packs. Activations are channel-last on both sides
// (nhwc / ndhwc, the project's (H, W, C) frames), so no activation reorder is timed. Nearest x2
// upsampling: the project reads it through its gather; oneDNN convolves the upsampled frame,
// built before timing, and a plain copy building it (what oneDNN's path would add) is timed on
// its own (column "x2 copy"). float32 goes through the process's GEMM backend as in vae_conv_bench:
// run with OPENBLAS_CORETYPE=SkylakeX for the AVX-512 OpenBLAS kernels that the ditgen executable
// asks for (dit/gemm.h). The outputs are checked against the project's: max |dnnl - project| over
// max |project|.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include <oneapi/dnnl/dnnl.hpp>

#include "apps/bench_util.h"
#include "dit/gemm.h"
#include "dit/gemm_bf16.h"
#include "vae/conv.h"

namespace {

using namespace ditgen;
namespace bench = app::bench;
using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

struct Shape {
  const char* name;
  int cin, cout, kt, k, in_h, in_w, up;
};

// The decoder's convolutions at 480 x 832 (latent 60 x 104), heaviest per frame first.
const Shape kShapes[] = {
    {"stage 3 residual 96->96 3x3x3, 480x832", 96, 96, 3, 3, 480, 832, 1},
    {"upsample2d 192->96 nearest x2 + 3x3, 480x832", 192, 96, 1, 3, 240, 416, 2},
    {"stage 2 residual 192->192 3x3x3, 240x416", 192, 192, 3, 3, 240, 416, 1},
    {"stage 1 residual 384->384 3x3x3, 120x208", 384, 384, 3, 3, 120, 208, 1},
    {"head 96->3 3x3x3, 480x832", 96, 3, 3, 3, 480, 832, 1},
    {"middle/stage 0 384->384 3x3x3, 60x104", 384, 384, 3, 3, 60, 104, 1},
    {"upsample3d 384->192 nearest x2 + 3x3, 240x416", 384, 192, 1, 3, 120, 208, 2},
};

std::vector<float> randn(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}

// Nearest x2 (or x1) upsampling of a channel-last frame, for oneDNN's input.
template <class T>
std::vector<T> upsample(const T* in, int h, int w, int c, int up) {
  std::vector<T> out(size_t(h) * up * w * up * c);
  for (int y = 0; y < h * up; ++y)
    for (int x = 0; x < w * up; ++x)
      std::memcpy(&out[(size_t(y) * w * up + x) * c], in + (size_t(y / up) * w + x / up) * c, size_t(c) * sizeof(T));
  return out;
}

double max_rel(const std::vector<float>& a, const std::vector<float>& ref) {
  double d = 0, m = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    d = std::max(d, double(std::fabs(a[i] - ref[i])));
    m = std::max(m, double(std::fabs(ref[i])));
  }
  return m > 0 ? d / m : d;
}

struct Timing {
  std::vector<double> wall, cpu;
  void add(const std::function<void()>& f) {
    const double c0 = bench::process_cpu_seconds();
    const auto t0 = bench::Clock::now();
    f();
    wall.push_back(bench::seconds_since(t0));
    cpu.push_back(bench::process_cpu_seconds() - c0);
  }
};

struct Row {
  std::string shape, dtype;
  double gflop = 0;
  double project = 0, d3 = 0, d2 = -1, upsample = -1;  // median seconds
  double project_cpu = 0, d3_cpu = 0, d2_cpu = -1;       // median CPU seconds
  double err3 = 0, err2 = -1;
  std::string impl3, impl2;
};

Row run_shape(const Shape& s, bool bf16, int repeats, const dnnl::engine& eng, dnnl::stream& strm) {
  const int k = s.k, kt = s.kt, cin = s.cin, cout = s.cout;
  const vae::ConvGeometry g = vae::ConvGeometry::same(s.in_h, s.in_w, k, s.up);
  const int oh = g.out_h, ow = g.out_w;
  const int64_t taps = int64_t(kt) * k * k;
  Row row;
  row.shape = s.name;
  row.dtype = bf16 ? "bf16" : "float32";
  row.gflop = 2.0 * double(cout) * cin * double(taps) * oh * ow * 1e-9;

  // Weights in PyTorch's (Cout, Cin, kt, kh, kw) order; the project's copy packed for bf16.
  std::vector<float> wt = randn(size_t(cout) * cin * taps, 1), bias = randn(size_t(cout), 2);
  for (auto& x : wt) x *= 1.0f / std::sqrt(float(cin * taps));
  vae::ConvWeights w = vae::ConvWeights::from_torch(wt.data(), bias.data(), cout, cin, kt, k, k);
  if (bf16) w.pack_bf16();
  std::vector<uint16_t> wt_bits(wt.size());
  gemm::to_bf16(wt.data(), int64_t(wt.size()), wt_bits.data());  // the values pack_bf16 keeps

  // kt input frames (in_h, in_w, Cin), oldest first; as bf16 bits for bf16.
  const size_t frame = size_t(s.in_h) * s.in_w * cin;
  std::vector<std::vector<float>> frames;
  std::vector<std::vector<uint16_t>> bits;
  std::vector<const float*> in;
  std::vector<const uint16_t*> in_bits;
  for (int t = 0; t < kt; ++t) {
    frames.push_back(randn(frame, 3 + t));
    bits.emplace_back(frame);
    gemm::to_bf16(frames.back().data(), int64_t(frame), bits.back().data());
    in.push_back(frames.back().data());
    in_bits.push_back(bits.back().data());
  }
  const size_t out_n = size_t(oh) * ow * cout;
  std::vector<float> out_p(out_n), out_3(out_n), out_2(out_n);
  auto project = [&] {
    if (bf16)
      vae::conv_frame(w, in_bits.data(), g, out_p.data());
    else
      vae::conv_frame(w, in.data(), g, out_p.data());
  };

  // oneDNN's inputs: the (upsampled) frames, each channel-last, and for "3d" all kt in one
  // ndhwc tensor.
  const dt act = bf16 ? dt::bf16 : dt::f32;
  const size_t esz = bf16 ? 2 : 4;
  const size_t uframe = size_t(oh) * ow * cin;  // an input frame after upsampling (stride 1)
  std::vector<unsigned char> stacked(uframe * kt * esz);
  std::vector<std::vector<unsigned char>> single(kt);
  for (int t = 0; t < kt; ++t) {
    single[t].resize(uframe * esz);
    if (bf16) {
      auto u = upsample(bits[t].data(), s.in_h, s.in_w, cin, s.up);
      std::memcpy(single[t].data(), u.data(), uframe * esz);
    } else {
      auto u = upsample(frames[t].data(), s.in_h, s.in_w, cin, s.up);
      std::memcpy(single[t].data(), u.data(), uframe * esz);
    }
    std::memcpy(stacked.data() + t * uframe * esz, single[t].data(), uframe * esz);
  }

  const memory::dims pad2 = {(k - 1) / 2, (k - 1) / 2};
  memory::desc bias_md({cout}, dt::f32, tag::x);
  memory bias_m(bias_md, eng, bias.data());
  dnnl::primitive_attr no_attr;

  // User weights: f32 or bf16 in PyTorch order; `strided` views one kt slice as oihw.
  auto user_weights = [&](const memory::desc& md, int t) {
    void* p = bf16 ? static_cast<void*>(wt_bits.data() + size_t(t) * k * k) : static_cast<void*>(wt.data() + size_t(t) * k * k);
    return memory(md, eng, p);
  };
  auto reordered = [&](memory user, const memory::desc& want) {
    memory m(want, eng);
    dnnl::reorder(user, m).execute(strm, user, m);
    strm.wait();
    return m;
  };

  // "3d": one convolution over depth kt (2D where kt = 1).
  dnnl::convolution_forward conv3;
  std::unordered_map<int, memory> args3;
  {
    memory::desc src_md, wts_any, dst_md, wts_user;
    memory::dims strides, pl, pr;
    if (kt > 1) {
      src_md = memory::desc({1, cin, kt, oh, ow}, act, tag::ndhwc);
      dst_md = memory::desc({1, cout, 1, oh, ow}, dt::f32, tag::ndhwc);
      wts_any = memory::desc({cout, cin, kt, k, k}, act, tag::any);
      wts_user = memory::desc({cout, cin, kt, k, k}, act, tag::oidhw);
      strides = {1, 1, 1}, pl = {0, pad2[0], pad2[1]}, pr = pl;
    } else {
      src_md = memory::desc({1, cin, oh, ow}, act, tag::nhwc);
      dst_md = memory::desc({1, cout, oh, ow}, dt::f32, tag::nhwc);
      wts_any = memory::desc({cout, cin, k, k}, act, tag::any);
      wts_user = memory::desc({cout, cin, k, k}, act, tag::oihw);
      strides = {1, 1}, pl = pad2, pr = pad2;
    }
    dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct, src_md,
                                      wts_any, bias_md, dst_md, strides, pl, pr);
    dnnl::convolution_forward::primitive_desc pd(d, no_attr, eng);
    row.impl3 = pd.impl_info_str();
    memory wts = reordered(user_weights(wts_user, 0), pd.weights_desc());
    conv3 = dnnl::convolution_forward(pd);
    args3 = {{DNNL_ARG_SRC, memory(src_md, eng, stacked.data())},
             {DNNL_ARG_WEIGHTS, wts},
             {DNNL_ARG_BIAS, bias_m},
             {DNNL_ARG_DST, memory(dst_md, eng, out_3.data())}};
  }
  auto dnnl3 = [&] {
    conv3.execute(strm, args3);
    strm.wait();
  };

  // "2d+": kt 2D convolutions, the first with the bias, the others summing into the output.
  std::vector<dnnl::convolution_forward> conv2;
  std::vector<std::unordered_map<int, memory>> args2;
  if (kt > 1) {
    const memory::desc src_md({1, cin, oh, ow}, act, tag::nhwc), dst_md({1, cout, oh, ow}, dt::f32, tag::nhwc);
    const memory::desc wts_any({cout, cin, k, k}, act, tag::any);
    // One kt slice of the (Cout, Cin, kt, k, k) weights: strides of the full tensor.
    const memory::desc wts_user({cout, cin, k, k}, act, memory::dims{cin * taps, taps, k, 1});
    dnnl::primitive_attr sum_attr;
    dnnl::post_ops po;
    po.append_sum(1.0f);
    sum_attr.set_post_ops(po);
    for (int t = 0; t < kt; ++t) {
      const bool first = t == 0;
      dnnl::convolution_forward::desc d =
          first ? dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference,
                                                  dnnl::algorithm::convolution_direct, src_md, wts_any, bias_md,
                                                  dst_md, {1, 1}, pad2, pad2)
                : dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference,
                                                  dnnl::algorithm::convolution_direct, src_md, wts_any, dst_md,
                                                  {1, 1}, pad2, pad2);
      dnnl::convolution_forward::primitive_desc pd(d, first ? no_attr : sum_attr, eng);
      row.impl2 += (first ? "" : " / ") + std::string(pd.impl_info_str());
      memory wts = reordered(user_weights(wts_user, t), pd.weights_desc());
      conv2.emplace_back(pd);
      std::unordered_map<int, memory> a = {{DNNL_ARG_SRC, memory(src_md, eng, single[t].data())},
                                           {DNNL_ARG_WEIGHTS, wts},
                                           {DNNL_ARG_DST, memory(dst_md, eng, out_2.data())}};
      if (first) a[DNNL_ARG_BIAS] = bias_m;
      args2.push_back(a);
    }
  }
  auto dnnl2 = [&] {
    for (size_t t = 0; t < conv2.size(); ++t) conv2[t].execute(strm, args2[t]);
    strm.wait();
  };

  // The nearest x2 that oneDNN's input needs, built by a plain OpenMP copy of the frame (oneDNN
  // 2.6.3's resampling_nearest crashes on nhwc frames of these sizes: bench/RESULTS.md).
  std::vector<unsigned char> up_dst;
  if (s.up > 1) up_dst.resize(uframe * esz);
  auto dnnl_up = [&] {
    const unsigned char* src = bf16 ? reinterpret_cast<const unsigned char*>(bits[0].data())
                                    : reinterpret_cast<const unsigned char*>(frames[0].data());
    const size_t run = size_t(cin) * esz;
#pragma omp parallel for schedule(static)
    for (int y = 0; y < oh; ++y)
      for (int x = 0; x < ow; ++x)
        std::memcpy(&up_dst[(size_t(y) * ow + x) * run], src + (size_t(y / s.up) * s.in_w + x / s.up) * run, run);
  };

  // One warm-up each, then `repeats` rounds of project, 3d, 2d+, upsample in turn.
  project();
  dnnl3();
  if (kt > 1) dnnl2();
  if (s.up > 1) dnnl_up();
  row.err3 = max_rel(out_3, out_p);
  if (kt > 1) row.err2 = max_rel(out_2, out_p);
  if (s.up > 1 && std::memcmp(up_dst.data(), single[0].data(), uframe * esz) != 0)
    std::fprintf(stderr, "warning: the timed upsampling differs from the bench's\n");
  Timing tp, t3, t2, tu;
  for (int r = 0; r < repeats; ++r) {
    tp.add(project);
    t3.add(dnnl3);
    if (kt > 1) t2.add(dnnl2);
    if (s.up > 1) tu.add(dnnl_up);
  }
  row.project = bench::median(tp.wall), row.project_cpu = bench::median(tp.cpu);
  row.d3 = bench::median(t3.wall), row.d3_cpu = bench::median(t3.cpu);
  if (kt > 1) row.d2 = bench::median(t2.wall), row.d2_cpu = bench::median(t2.cpu);
  if (s.up > 1) row.upsample = bench::median(tu.wall);
  return row;
}

const char* isa_name(dnnl::cpu_isa isa) {
  switch (isa) {
    case dnnl::cpu_isa::avx512_core_amx: return "avx512_core_amx";
    case dnnl::cpu_isa::avx512_core_bf16: return "avx512_core_bf16";
    case dnnl::cpu_isa::avx512_core_vnni: return "avx512_core_vnni";
    case dnnl::cpu_isa::avx512_core: return "avx512_core";
    case dnnl::cpu_isa::avx2_vnni: return "avx2_vnni";
    case dnnl::cpu_isa::avx2: return "avx2";
    default: return "other";
  }
}

int usage() {
  std::fprintf(stderr,
               "usage: vae_onednn_bench [--repeats N] [--dtype both|bf16|float32] [--shapes 1,2,...] [--threads N]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  // "project" is the im2col + GEMM path: the library's default is oneDNN where it is built in.
  vae::set_conv_backend(vae::ConvBackend::im2col);
  int repeats = 7, threads = 0;
  std::string dtype = "both";
  std::vector<int> only;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) return usage();
    const std::string v = argv[++i];
    if (a == "--repeats") {
      repeats = std::atoi(v.c_str());
    } else if (a == "--threads") {
      threads = std::atoi(v.c_str());
    } else if (a == "--dtype") {
      dtype = v;
    } else if (a == "--shapes") {
      for (size_t p = 0; p < v.size();) {
        const size_t q = std::min(v.find(',', p), v.size());
        only.push_back(std::atoi(v.substr(p, q - p).c_str()));
        p = q + 1;
      }
    } else {
      return usage();
    }
  }
  const int nshapes = int(sizeof(kShapes) / sizeof(kShapes[0]));
  if (repeats < 1 || (dtype != "both" && dtype != "bf16" && dtype != "float32") ||
      std::any_of(only.begin(), only.end(), [&](int s) { return s < 1 || s > nshapes; }))
    return usage();
  if (threads > 0) omp_set_num_threads(threads);
  if (only.empty())
    for (int s = 1; s <= nshapes; ++s) only.push_back(s);

  const dnnl_version_t* ver = dnnl::version();
  std::printf("oneDNN %d.%d.%d (%s), CPU runtime %s, effective ISA %s\n", ver->major, ver->minor, ver->patch,
              ver->hash, ver->cpu_runtime == DNNL_RUNTIME_OMP ? "OpenMP" : "not OpenMP",
              isa_name(dnnl::get_effective_cpu_isa()));
  std::printf("OpenMP threads %d (project and oneDNN alike); float32 GEMM backend %s (%s); bf16 GEMM %s\n",
              omp_get_max_threads(), gemm::backend_name(gemm::active_backend()).c_str(),
              gemm::openblas_description().c_str(), gemm::bf16_gemm_available() ? "available" : "NOT available");
  std::printf("repeats %d (medians); load average before %.2f\n\n", repeats, bench::load_average());

  dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  dnnl::stream strm(eng);
  std::vector<Row> rows;
  for (bool bf16 : {true, false}) {
    if ((bf16 && dtype == "float32") || (!bf16 && dtype == "bf16")) continue;
    if (bf16 && !gemm::bf16_gemm_available()) {
      std::printf("bf16 skipped: no AVX-512 BF16\n");
      continue;
    }
    for (int s : only) {
      const Row r = run_shape(kShapes[s - 1], bf16, repeats, eng, strm);
      rows.push_back(r);
      std::printf("[%d] %s %s: project %.4f s, dnnl 3d %.4f s", s, r.shape.c_str(), r.dtype.c_str(), r.project, r.d3);
      if (r.d2 >= 0) std::printf(", dnnl 2d+ %.4f s", r.d2);
      if (r.upsample >= 0) std::printf(", upsample copy %.4f s", r.upsample);
      std::printf("; GFLOP per CPU-second: project %.0f, dnnl 3d %.0f", r.gflop / r.project_cpu, r.gflop / r.d3_cpu);
      if (r.d2 >= 0) std::printf(", dnnl 2d+ %.0f", r.gflop / r.d2_cpu);
      std::printf("; max rel err 3d %.2e", r.err3);
      if (r.err2 >= 0) std::printf(", 2d+ %.2e", r.err2);
      std::printf("\n    impl 3d: %s", r.impl3.c_str());
      if (!r.impl2.empty()) std::printf("\n    impl 2d+: %s", r.impl2.c_str());
      std::printf("\n");
      std::fflush(stdout);
    }
  }
  std::printf("\nload average after %.2f\n\n", bench::load_average());

  // GFLOP/s of wall time (medians); ratios oneDNN / project (> 1: oneDNN faster); the same
  // ratios per CPU-second in brackets.
  std::printf("| shape | dtype | project GFLOP/s | oneDNN 3d GFLOP/s | 3d / project | oneDNN 2d+sum GFLOP/s | "
              "2d+sum / project | x2 copy ms | max rel err 3d, 2d+ |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|\n");
  for (const Row& r : rows) {
    std::printf("| %s | %s | %.0f | %.0f | %.2f (%.2f) |", r.shape.c_str(), r.dtype.c_str(), r.gflop / r.project,
                r.gflop / r.d3, r.project / r.d3, r.project_cpu / r.d3_cpu);
    if (r.d2 >= 0)
      std::printf(" %.0f | %.2f (%.2f) |", r.gflop / r.d2, r.project / r.d2, r.project_cpu / r.d2_cpu);
    else
      std::printf(" – | – |");
    if (r.upsample >= 0)
      std::printf(" %.1f |", r.upsample * 1e3);
    else
      std::printf(" – |");
    std::printf(" %.1e", r.err3);
    if (r.err2 >= 0) std::printf(", %.1e", r.err2);
    std::printf(" |\n");
  }
  return 0;
}
