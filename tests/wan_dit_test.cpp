// The Wan2.1 DiT against the official code: tests/data/wan/ holds a narrow model of the same
// structure with random weights in the release's names and the official forward pass's
// tensors (made by tools/wan/make_dit_goldens.py, docs/wan-reference.md). The C++ forward pass
// of those weights must give the per-block residual stream and the velocity within 1e-3 of
// the largest golden value (float32 throughout; worst seen is printed).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "attention/backend.h"
#include "io/safetensors.h"
#include "io/wan_dit.h"
#include "pipeline/family.h"
#include "sampler/sampler.h"
#include "tests/test_util.h"
#include "tests/wan_golden.h"

namespace ditgen {
namespace {

const std::string kDir = std::string(DITGEN_SOURCE_DIR) + "/tests/data/wan/";

io::WanDiTSettings tiny_settings() { return wan_golden::settings_from_config(kDir + "tiny_dit_config.json"); }

using wan_golden::Forward;
using wan_golden::rel_error;
using wan_golden::to_cthw;
using wan_golden::to_thwc;

// The official forward pass of tiny_dit_forward.safetensors through the C++ model of `weights`.
Forward run_forward(const std::string& weights) {
  const io::SafetensorsFile g = io::SafetensorsFile::open(kDir + "tiny_dit_forward.safetensors");
  io::LoadedModel lm = io::load_wan_dit(weights, tiny_settings());
  pipeline::Model m = pipeline::assemble_model(lm.config, std::move(lm.weights));
  return wan_golden::run_forward(*m.dit, g);
}

TEST(WanDiT, ForwardMatchesTheOfficialCodeBlockByBlock) {
  const io::SafetensorsFile g = io::SafetensorsFile::open(kDir + "tiny_dit_forward.safetensors");
  const Forward f = run_forward(kDir + "tiny_dit.safetensors");
  ASSERT_EQ(f.blocks.size(), 2u);
  for (size_t b = 0; b < f.blocks.size(); ++b) {
    const std::vector<float> ref = g.to_float("block." + std::to_string(b));
    ASSERT_EQ(size_t(f.blocks[b].size()), ref.size());
    const double e = rel_error(f.blocks[b].data(), ref);
    std::printf("block %zu: max relative error %.3g\n", b, e);
    EXPECT_LE(e, 1e-3) << "block " << b;
  }
  const std::vector<float> ref = g.to_float("velocity");
  const double e = rel_error(f.velocity.data(), ref);
  std::printf("velocity: max relative error %.3g\n", e);
  EXPECT_LE(e, 1e-3);
}

TEST(WanDiT, FourStepUniPCSamplingMatchesTheOfficialScheduler) {
  // The official text2video loop: FlowUniPCMultistepScheduler with shift 5 over 4 steps,
  // guidance 5 between the prompt's and the negative prompt's passes, the model called at the
  // integer timestep int(1000 sigma). The C++ flow schedule, UniPC and guidance, from the same
  // noise, must reach the official latents at 40 dB PSNR or more (peak: the golden's range).
  const io::SafetensorsFile g = io::SafetensorsFile::open(kDir + "tiny_dit_sample.safetensors");
  io::LoadedModel lm = io::load_wan_dit(kDir + "tiny_dit.safetensors", tiny_settings());
  pipeline::Model m = pipeline::assemble_model(lm.config, std::move(lm.weights));
  const DiTConfig& c = m.config();
  const std::vector<int64_t> s = g.tensor("noise").shape;
  const int steps = int(g.tensor("timesteps").numel());
  const std::vector<double> sigmas = sampler::flow_sigmas(steps, 5.0);
  const std::vector<float> ref_sigmas = g.to_float("sigmas"), ref_t = g.to_float("timesteps");
  for (int i = 0; i <= steps; ++i) EXPECT_NEAR(sigmas[size_t(i)], ref_sigmas[size_t(i)], 1e-6) << "sigma " << i;
  // Context rows: prompt first, negative prompt second, each zero-padded to text_len.
  Tensor ctx({2, int64_t(c.ctx_len), int64_t(c.ctx_dim)});
  ctx.fill(0.0f);
  const std::vector<float> pos = g.to_float("context"), neg = g.to_float("negative_context");
  std::copy(pos.begin(), pos.end(), ctx.data());
  std::copy(neg.begin(), neg.end(), ctx.data() + int64_t(c.ctx_len) * c.ctx_dim);
  std::vector<float> x = to_thwc(g.to_float("noise"), s);
  const int64_t n = int64_t(x.size());
  const sampler::Guidance guidance(5.0);
  std::vector<float> xin(size_t(2 * n)), vout(size_t(2 * n));
  attn::DenseBackend dense;
  auto velocity = [&](const float* xs, double sigma, int step, float* v) {
    std::copy_n(xs, n, xin.data());
    std::copy_n(xs, n, xin.data() + n);
    const double t = std::trunc(sampler::sigma_to_timestep(sigma));
    EXPECT_EQ(t, double(ref_t[size_t(step)])) << "timestep of step " << step;
    const double ts[2] = {t, t};
    m.dit->forward(xin.data(), LatentShape{int(s[1]), int(s[2]), int(s[3])}, 2, ts, ctx, dense, {}, vout.data());
    guidance.combine_batched(vout.data(), v, n);
  };
  sampler::sample(sampler::Solver::UniPC, x.data(), n, sigmas, velocity);
  const std::vector<float> ref = g.to_float("latents"), got = to_cthw(x, s);
  double mse = 0, lo = ref[0], hi = ref[0];
  for (size_t i = 0; i < ref.size(); ++i) {
    mse += (double(got[i]) - ref[i]) * (double(got[i]) - ref[i]);
    lo = std::min(lo, double(ref[i])), hi = std::max(hi, double(ref[i]));
  }
  mse /= double(ref.size());
  const double psnr = 10 * std::log10((hi - lo) * (hi - lo) / mse);
  std::printf("4-step UniPC latents against the official scheduler: %.1f dB\n", psnr);
  EXPECT_GE(psnr, 40.0);
}

TEST(WanDiT, DiffusersNamesLoadTheSameModel) {
  // The tiny weights rewritten under the diffusers-format names give the same velocity.
  const io::SafetensorsFile w = io::SafetensorsFile::open(kDir + "tiny_dit.safetensors");
  const std::map<std::string, std::string> names = {
      {"time_embedding.0.", "condition_embedder.time_embedder.linear_1."},
      {"time_embedding.2.", "condition_embedder.time_embedder.linear_2."},
      {"text_embedding.0.", "condition_embedder.text_embedder.linear_1."},
      {"text_embedding.2.", "condition_embedder.text_embedder.linear_2."},
      {"time_projection.1.", "condition_embedder.time_proj."},
      {"head.head.", "proj_out."},
      {"self_attn.q.", "attn1.to_q."}, {"self_attn.k.", "attn1.to_k."}, {"self_attn.v.", "attn1.to_v."},
      {"self_attn.o.", "attn1.to_out.0."}, {"self_attn.norm_", "attn1.norm_"},
      {"cross_attn.q.", "attn2.to_q."}, {"cross_attn.k.", "attn2.to_k."}, {"cross_attn.v.", "attn2.to_v."},
      {"cross_attn.o.", "attn2.to_out.0."}, {"cross_attn.norm_", "attn2.norm_"},
      {"norm3.", "norm2."}, {"ffn.0.", "ffn.net.0.proj."}, {"ffn.2.", "ffn.net.2."}};
  std::vector<std::vector<float>> data;
  std::vector<io::SafetensorsWriteTensor> out;
  for (const auto& t : w.tensors()) data.push_back(w.to_float(t.name));
  for (size_t i = 0; i < w.tensors().size(); ++i) {
    std::string n = w.tensors()[i].name;
    if (n == "head.modulation") n = "scale_shift_table";
    else if (n.size() > 11 && n.compare(n.size() - 11, 11, ".modulation") == 0) n = n.substr(0, n.size() - 11) + ".scale_shift_table";
    for (const auto& [from, to] : names) {
      const size_t p = n.find(from);
      if (p != std::string::npos && (p == 0 || n[p - 1] == '.')) {
        n = n.substr(0, p) + to + n.substr(p + from.size());
        break;
      }
    }
    out.push_back({n, DType::F32, w.tensors()[i].shape, data[i].data(), nullptr});
  }
  test::TempDir dir;
  const std::string path = (dir.path / "diffusers.safetensors").string();
  io::write_safetensors(path, out);
  const Forward a = run_forward(kDir + "tiny_dit.safetensors"), b = run_forward(path);
  EXPECT_EQ(a.velocity, b.velocity);
}

TEST(WanDiT, BadFilesNameTheProblem) {
  test::TempDir dir;
  const io::SafetensorsFile w = io::SafetensorsFile::open(kDir + "tiny_dit.safetensors");
  std::vector<std::vector<float>> data;
  std::vector<io::SafetensorsWriteTensor> out;
  for (const auto& t : w.tensors()) data.push_back(w.to_float(t.name));
  for (size_t i = 0; i < w.tensors().size(); ++i) {
    if (w.tensors()[i].name == "blocks.1.cross_attn.k.bias") continue;  // drop one tensor
    out.push_back({w.tensors()[i].name, DType::F32, w.tensors()[i].shape, data[i].data(), nullptr});
  }
  const std::string path = (dir.path / "missing.safetensors").string();
  io::write_safetensors(path, out);
  try {
    io::load_wan_dit(path, tiny_settings());
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("blocks.1.cross_attn.k.bias"), std::string::npos) << e.what();
  }
  io::WanDiTSettings bad = tiny_settings();
  bad.num_heads = 3;  // does not divide 64
  try {
    io::load_wan_dit(kDir + "tiny_dit.safetensors", bad);
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("num_heads = 3"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace ditgen
