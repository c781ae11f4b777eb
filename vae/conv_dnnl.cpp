#include "vae/conv_dnnl.h"

#if defined(DITGEN_HAS_ONEDNN)
#include <oneapi/dnnl/dnnl.hpp>

#include <map>
#include <mutex>
#include <tuple>
#include <type_traits>
#include <vector>
#endif

namespace ditgen::vae {

#if defined(DITGEN_HAS_ONEDNN)

namespace detail {
// The primitives of one geometry and input type: per frame slot dt, the convolution of the
// first frame present (bias, overwrites the output) and of the later ones (sum post-op), with
// the weights of slot dt reordered to the layout each chose.
struct DnnlPlan {
  struct Slot {
    dnnl::convolution_forward first, rest;
    dnnl::memory w_first, w_rest;
  };
  std::vector<Slot> slots;  // kt
  dnnl::memory::desc src, dst;
  dnnl::memory bias;
};
struct DnnlPlans {
  std::mutex mutex;
  std::map<std::tuple<int, int, int, int, int, int, int, int, bool>, std::unique_ptr<DnnlPlan>> plans;
};
}  // namespace detail

namespace {
using dnnl::memory;

dnnl::engine& engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

// Weights of slot dt as (Cout, kh, kw, Cin) in T: the frames' type (bf16 bits or float).
template <class T>
std::vector<T> slot_weights(const ConvWeights& w, int dt, const std::vector<uint16_t>& unpacked) {
  const int64_t K = w.k(), taps = int64_t(w.kh) * w.kw * w.cin;
  std::vector<T> out(size_t(w.cout) * taps);
  for (int o = 0; o < w.cout; ++o)
    for (int64_t i = 0; i < taps; ++i) {
      const int64_t src = int64_t(o) * K + dt * taps + i;
      if constexpr (std::is_same_v<T, uint16_t>)
        out[size_t(o * taps + i)] = unpacked[size_t(src)];
      else
        out[size_t(o * taps + i)] = w.w[size_t(src)];
    }
  return out;
}

template <class T>
std::unique_ptr<detail::DnnlPlan> make_plan(const ConvWeights& w, const ConvGeometry& g) {
  using dt = memory::data_type;
  using tag = memory::format_tag;
  const dt type = std::is_same_v<T, uint16_t> ? dt::bf16 : dt::f32;
  const int ih = g.in_h * g.upsample, iw = g.in_w * g.upsample;
  const memory::dims strides{g.stride, g.stride}, pad_l{g.pad_top, g.pad_left},
      pad_r{(g.out_h - 1) * g.stride + w.kh - ih - g.pad_top, (g.out_w - 1) * g.stride + w.kw - iw - g.pad_left};
  auto plan = std::make_unique<detail::DnnlPlan>();
  plan->src = memory::desc({1, w.cin, ih, iw}, type, tag::nhwc);
  plan->dst = memory::desc({1, w.cout, g.out_h, g.out_w}, dt::f32, tag::nhwc);
  const memory::desc any({w.cout, w.cin, w.kh, w.kw}, type, tag::any), user({w.cout, w.cin, w.kh, w.kw}, type, tag::ohwi),
      bias_md({w.cout}, dt::f32, tag::a);
  plan->bias = memory(bias_md, engine());
  std::copy(w.bias.begin(), w.bias.end(), static_cast<float*>(plan->bias.get_data_handle()));
  dnnl::primitive_attr sum;
  dnnl::post_ops po;
  po.append_sum(1.0f);
  sum.set_post_ops(po);
  const dnnl::convolution_forward::primitive_desc first(
      dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct, plan->src,
                                      any, bias_md, plan->dst, strides, pad_l, pad_r),
      engine());
  const dnnl::convolution_forward::primitive_desc rest(
      dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct, plan->src,
                                      any, plan->dst, strides, pad_l, pad_r),
      sum, engine());
  std::vector<uint16_t> unpacked;
  if (std::is_same_v<T, uint16_t>) {
    unpacked.resize(size_t(w.cout) * size_t(w.k()));
    w.packed.unpack_bits(unpacked.data());
  }
  dnnl::stream s(engine());
  for (int t = 0; t < w.kt; ++t) {
    std::vector<T> host = slot_weights<T>(w, t, unpacked);
    memory src(user, engine(), host.data());
    detail::DnnlPlan::Slot slot{dnnl::convolution_forward(first), dnnl::convolution_forward(rest),
                                memory(first.weights_desc(), engine()), memory()};
    dnnl::reorder(src, slot.w_first).execute(s, src, slot.w_first);
    if (rest.weights_desc() == first.weights_desc()) {
      slot.w_rest = slot.w_first;  // one copy of the weights where both chose the same layout
    } else {
      slot.w_rest = memory(rest.weights_desc(), engine());
      dnnl::reorder(src, slot.w_rest).execute(s, src, slot.w_rest);
    }
    s.wait();
    plan->slots.push_back(std::move(slot));
  }
  return plan;
}

// The nearest x2 frame of `in` (h, w, c).
template <class T>
void upsample2(const T* in, int h, int w, int c, std::vector<T>& out) {
  out.resize(size_t(4) * h * w * c);
#pragma omp parallel for schedule(static)
  for (int y = 0; y < 2 * h; ++y)
    for (int x = 0; x < 2 * w; ++x) {
      const T* s = in + (int64_t(y / 2) * w + x / 2) * c;
      std::copy(s, s + c, out.data() + (int64_t(y) * 2 * w + x) * c);
    }
}

template <class T>
bool run(const ConvWeights& w, const T* const* in, const ConvGeometry& g, float* out) {
  if (g.upsample != 1 && g.upsample != 2) return false;
  const bool bf16 = std::is_same_v<T, uint16_t>;
  if (!w.dnnl) w.dnnl = std::make_shared<detail::DnnlPlans>();
  detail::DnnlPlan* plan;
  {
    std::lock_guard<std::mutex> lock(w.dnnl->mutex);
    auto& p = w.dnnl->plans[{g.in_h, g.in_w, g.upsample, g.stride, g.pad_top, g.pad_left, g.out_h, g.out_w, bf16}];
    if (!p) p = make_plan<T>(w, g);
    plan = p.get();
  }
  dnnl::stream s(engine());
  memory dst(plan->dst, engine(), out);
  std::vector<T> up;
  bool first = true;
  for (int t = 0; t < w.kt; ++t) {
    if (!in[t]) continue;  // the causal zero frame adds nothing
    const T* src = in[t];
    if (g.upsample == 2) {
      upsample2(src, g.in_h, g.in_w, w.cin, up);
      src = up.data();
    }
    memory m(plan->src, engine(), const_cast<T*>(src));
    const detail::DnnlPlan::Slot& slot = plan->slots[size_t(t)];
    if (first)
      slot.first.execute(s, {{DNNL_ARG_SRC, m}, {DNNL_ARG_WEIGHTS, slot.w_first}, {DNNL_ARG_BIAS, plan->bias}, {DNNL_ARG_DST, dst}});
    else
      slot.rest.execute(s, {{DNNL_ARG_SRC, m}, {DNNL_ARG_WEIGHTS, slot.w_rest}, {DNNL_ARG_DST, dst}});
    s.wait();  // `up` is reused by the next frame
    first = false;
  }
  if (first)  // every frame is padding: the bias alone
    for (int64_t p = 0; p < int64_t(g.out_h) * g.out_w; ++p) std::copy(w.bias.begin(), w.bias.end(), out + p * w.cout);
  return true;
}
}  // namespace

bool dnnl_available() { return true; }

bool dnnl_conv_frame(const ConvWeights& w, const float* const* in, const ConvGeometry& g, float* out) {
  return !w.is_bf16() && run(w, in, g, out);
}

bool dnnl_conv_frame(const ConvWeights& w, const uint16_t* const* in, const ConvGeometry& g, float* out) {
  return w.is_bf16() && run(w, in, g, out);
}

#else

bool dnnl_available() { return false; }
bool dnnl_conv_frame(const ConvWeights&, const float* const*, const ConvGeometry&, float*) { return false; }
bool dnnl_conv_frame(const ConvWeights&, const uint16_t* const*, const ConvGeometry&, float*) { return false; }

#endif

}  // namespace ditgen::vae
