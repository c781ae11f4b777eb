// --attn SPEC: every method spells out its defaults, and unknown names, keys and values are
// rejected with a message naming them.
#include <gtest/gtest.h>

#include <stdexcept>

#include <cstdio>

#include "attention/methods/methods.h"
#include "attention/methods/paro.h"
#include "attention/spec.h"
#include "test_util.h"

using namespace ditgen::attn;

namespace {

// The plain spec of a method; paro needs a calibration file.
std::string plain(const std::string& name) {
  if (name != "paro") return name;
  static const std::string path = [] {
    ParoCalibration c;
    c.tp = 2, c.hp = 4, c.wp = 4, c.block = 16, c.heads = 1, c.layers = 0;
    const std::string p = testing::TempDir() + "sparse_spec_paro.json";
    c.write(p);
    return p;
  }();
  return "paro:calib=" + path;
}

std::string error_of(const std::string& spec) {
  try {
    make_backend(spec);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(SparseSpec, UnknownMethodIsNamed) {
  const std::string e = error_of("spiral:block=64");
  EXPECT_NE(e.find("'spiral'"), std::string::npos) << e;
  EXPECT_NE(e.find("radial"), std::string::npos) << e;  // lists the known methods
}

TEST(SparseSpec, UnknownKeysAreNamed) {
  for (const MethodInfo& m : methods()) {
    const std::string e = error_of(m.name + ":blok=64,zzz=1");
    EXPECT_NE(e.find("'blok'"), std::string::npos) << m.name << ": " << e;
    EXPECT_NE(e.find("'zzz'"), std::string::npos) << m.name << ": " << e;
    EXPECT_NE(e.find("block"), std::string::npos) << m.name << ": " << e;  // lists the valid keys
  }
}

TEST(SparseSpec, BadValuesAreNamed) {
  for (const std::string spec : {"radial:block=0", "radial:decay=x", "window:window=3x3", "window:layout=spiral",
                                 "radial:dense_steps=often", "radial:sink=maybe", "window:tile=0x1x1",
                                 "radial3d:isa=sse9", "dense:isa=avx"}) {
    const std::string e = error_of(spec);
    EXPECT_FALSE(e.empty()) << spec;
    const std::string key = spec.substr(spec.find(':') + 1, spec.find('=') - spec.find(':') - 1);
    EXPECT_NE(e.find(key), std::string::npos) << spec << ": " << e;
  }
  EXPECT_FALSE(error_of("radial:block").empty());  // not key=value
}

TEST(SparseSpec, SpecSpellsOutDefaultsAndRoundTrips) {
  EXPECT_EQ(make_backend("dense")->spec(), "dense:block=64,isa=auto");
  EXPECT_EQ(make_backend("radial")->spec(),
            "radial:decay=0.2,sink=1,shrink=1,block=128,layout=frame,tile=4x4x4,dense_steps=0.25,dense_layers=1,"
            "auto_tol=0.05,auto_rows=64,refresh=0,fallback=dense,isa=auto");
  for (const MethodInfo& m : methods()) {
    const std::string full = make_backend(plain(m.name))->spec();
    EXPECT_EQ(full.rfind(m.name, 0), 0u) << full;
    EXPECT_EQ(make_backend(full)->spec(), full);
  }
  EXPECT_EQ(make_backend("window:window=5x3x3,dense_steps=auto")->spec().find("window:window=5x3x3"), 0u);
}

TEST(SparseSpec, ParoNamesItsMissingCalibration) {
  EXPECT_NE(error_of("paro").find("calib"), std::string::npos);
  EXPECT_NE(error_of("paro:calib=/nonexistent/calib.json").find("calib.json"), std::string::npos);
}

TEST(SparseSpec, IsaDefaultsToTheRunsPath) {
  for (const MethodInfo& m : methods()) {
    KernelOptions run;
    run.isa = Isa::Portable;
    const std::string full = make_backend(plain(m.name), run)->spec();
    EXPECT_NE(full.find("isa=portable"), std::string::npos) << full;
    // The key wins over the run's path.
    EXPECT_NE(make_backend(full.substr(0, full.find("isa=")) + "isa=auto", run)->spec().find("isa=auto"),
              std::string::npos)
        << full;
  }
}

// isa=avx512bf16 runs the bf16 kernel in every pass of a method, and its K/V copies count in the
// memory estimate; on a CPU without the path the spec is refused with the value named.
TEST(SparseSpec, IsaKeyPicksTheKernelPath) {
  if (!isa_supported(Isa::Avx512Bf16)) {
    EXPECT_NE(error_of("dense:isa=avx512bf16").find("isa=avx512bf16"), std::string::npos);
    EXPECT_NE(error_of("radial3d:isa=avx512bf16").find("isa=avx512bf16"), std::string::npos);
    return;
  }
  const int heads = 2, dh = 32;
  const int64_t n = 8 * 8 * 8;
  auto rng = ditgen::test::fresh_rng();
  const size_t count = size_t(heads) * size_t(n) * dh;
  const auto q = ditgen::test::random_vector(count, rng), k = ditgen::test::random_vector(count, rng),
             v = ditgen::test::random_vector(count, rng);
  const ditgen::TokenLayout layout(8, 8, 8);
  AttentionInputs in;
  in.q = q.data(), in.k = k.data(), in.v = v.data();
  in.heads = heads, in.tokens = n, in.head_dim = dh, in.layout = &layout;
  // Steps 0..3 of one backend: dense warm-up (step 0, also an anchor), sparse + residual,
  // anchor, sparse + residual; the radial map at 8 frames drops pairs.
  for (const std::string& spec : {std::string("dense:"), std::string("radial3d:block=16,dense_steps=1,dense_layers=0,refresh=2,fallback=none,")}) {
    auto f32 = make_backend(spec + "isa=portable");
    auto bf16 = make_backend(spec + "isa=avx512bf16");
    for (int step = 0; step < 4; ++step) {
      AttentionContext ctx;
      ctx.step = step, ctx.num_steps = 4, ctx.layer = 1, ctx.num_layers = 2;
      std::vector<float> a(count), b(count);
      f32->attend(in, a.data(), ctx);
      const AttendReport rb = bf16->attend(in, b.data(), ctx);
      // bf16 rounding of q, k, v and p: NMSE about 1e-5 against float32 (attention_kernel_test).
      EXPECT_GT(ditgen::test::max_abs_diff(a.data(), b.data(), count), 0.0) << spec << " step " << step;
      EXPECT_LT(ditgen::test::nmse(b.data(), a.data(), count), 2e-4) << spec << " step " << step;
      if (spec != "dense:" && step % 2 == 1) {
        EXPECT_LT(rb.density, 1.0) << "step " << step;
      }
    }
  }
  const int64_t kv = kernel_state_bytes(KernelOptions{Isa::Avx512Bf16, 0}, 64, 2 * heads, n, dh);
  EXPECT_GE(kv, int64_t(2) * 2 * heads * n * dh * 2);  // bf16 K and V of B*NH heads
  EXPECT_EQ(make_backend("dense:isa=avx512bf16")->state_bytes(n, 2, heads, dh, 4), kv);
  EXPECT_EQ(make_backend("dense:isa=avx512")->state_bytes(n, 2, heads, dh, 4), 0);
  EXPECT_EQ(make_backend("radial3d:isa=avx512bf16")->state_bytes(n, 2, heads, dh, 4), kv);
  EXPECT_EQ(make_backend("radial3d:isa=avx512bf16,refresh=2")->state_bytes(n, 2, heads, dh, 4),
            kv + int64_t(3) * 2 * heads * n * dh * 4 + int64_t(2) * 2 * heads * n * 4);  // plus the residuals of
                                                                                   // layers 1..3, two lse rows
}
