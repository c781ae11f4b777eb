#include "pipeline/generate.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <sstream>
#include <stdexcept>

#include "io/atomic_file.h"
#include "pipeline/memory.h"
#include "pipeline/options.h"
#include "sampler/sampler.h"

namespace ditgen::pipeline {

namespace {
using Clock = std::chrono::steady_clock;

void draw_progress(int done, int total, double elapsed) {
  const int width = 30;
  const int filled = total ? width * done / total : width;
  const double rate = elapsed > 0 ? done / elapsed : 0;
  const double eta = rate > 0 ? (total - done) / rate : 0;
  std::fprintf(stderr, "\r[%.*s%*s] %d/%d steps  %.2f s/step  ETA %.0f s ", filled,
               "##############################", width - filled, "", done, total, rate > 0 ? 1.0 / rate : 0.0, eta);
  if (done == total) std::fprintf(stderr, "\n");
  std::fflush(stderr);
}
}  // namespace

GenerateResult generate(Model& model, attn::AttentionBackend& backend, const GenerateOptions& opt) {
  DiTModel& dit = *model.dit;
  const DiTConfig& cfg = dit.config();
  cfg.validate(opt.shape);
  check_steps(opt.steps, "steps");
  check_cfg(opt.cfg, "cfg");
  const sampler::Solver solver = sampler::parse_solver(opt.solver);
  dit.set_rope_extrapolation(opt.rope);
  const sampler::Guidance guidance(opt.cfg);
  const int batch = guidance.batch();

  // Conditioning: (B, L, E) with the conditional row first and the unconditional one second.
  if (!model.conditioner)
    throw std::invalid_argument("this model has num_classes = 0 (raw context) and no conditioner: generate conditions "
                                "label models (expected num_classes > 0) and Wan2.1 models (a folder or .safetensors "
                                "file, conditioned on text-encoder states)");
  const Tensor ctx = model.conditioner->context(opt.condition, batch == 2);

  // The int64 estimate overflows for absurd sizes (frames x height x width beyond 2^63): bound
  // it in floating point first, with the same terms, and refuse such runs on that figure.
  const double video_d = double(opt.shape.frames) * opt.shape.height * opt.shape.width * cfg.in_channels;
  const double tokens_d = double(opt.shape.frames / cfg.patch_t) * double(opt.shape.height / cfg.patch_h) *
                          double(opt.shape.width / cfg.patch_w);
  const double rough = 4.0 * (6.0 * batch * video_d +
                              batch * tokens_d * (10.0 * cfg.dim + std::max(cfg.ffn_dim, cfg.patch_values())));
  const bool absurd = !(rough < 1e17);
  const int64_t need = absurd ? 0
                              : dit.estimate_peak_bytes(opt.shape, batch) +
                                    backend.state_bytes(cfg.tokens(opt.shape), batch, cfg.num_heads, cfg.head_dim(),
                                                        cfg.num_layers);
  // The weights are resident already: the memory available now plus theirs.
  const int64_t limit =
      opt.memory_limit_bytes > 0 ? opt.memory_limit_bytes : available_memory_bytes() + dit.weight_bytes();
  if (absurd || need > limit) {
    std::ostringstream s;
    s << "this run needs about ";
    if (absurd) {
      s << rough / double(1 << 20) << " MiB (" << tokens_d;
    } else {
      s << need / (1 << 20) << " MiB (" << cfg.tokens(opt.shape);
    }
    s << " tokens, batch " << batch << ") but only " << limit / (1 << 20)
      << " MiB are available; use fewer frames or a smaller size";
    throw std::runtime_error(s.str());
  }

  const int64_t n = int64_t(opt.shape.frames) * opt.shape.height * opt.shape.width * cfg.in_channels;
  GenerateResult res;
  res.tokens = cfg.tokens(opt.shape);
  res.attn_spec = backend.spec();
  if (opt.noise.empty()) {
    res.video.resize(size_t(n));
    sampler::gaussian_noise(opt.seed, res.video.data(), n);
  } else {
    if (int64_t(opt.noise.size()) != n)
      throw std::invalid_argument("the given noise has " + std::to_string(opt.noise.size()) + " values, expected " +
                                  std::to_string(n) + " for this run's latent");
    res.video = opt.noise;
  }

  std::vector<float> xin(size_t(batch * n)), vout(size_t(batch * n));
  sampler::StepCache cache(opt.cache, n, batch);
  res.cache_spec = opt.cache.str();
  const std::vector<double> sigmas = sampler::flow_sigmas(opt.steps, cfg.sample_shift);
  const auto t0 = Clock::now();
  auto velocity = [&](const float* x, double sigma, int step, float* v) {
    if (!cache.compute(x, step, opt.steps, backend.pinned_step(step, opt.steps))) {
      cache.reuse(x, sigma, vout.data());
      guidance.combine_batched(vout.data(), v, n);
      return;
    }
    for (int b = 0; b < batch; ++b) std::copy_n(x, n, xin.data() + b * n);
    const double ts = sampler::sigma_to_timestep(sigma);
    const std::vector<double> t(size_t(batch), model.defaults.integer_timesteps ? std::trunc(ts) : ts);
    attn::AttentionContext actx;
    actx.step = step;
    actx.num_steps = opt.steps;
    try {
      dit.forward(xin.data(), opt.shape, batch, t.data(), ctx, backend, actx, vout.data(), &res.profile);
    } catch (const NumericalError& e) {
      throw std::runtime_error("numerical guard: non-finite value at step " + std::to_string(step) + ", block " +
                               std::to_string(e.layer()) + " (check the weights and the attention method)");
    }
    cache.store(x, sigma, vout.data());
    guidance.combine_batched(vout.data(), v, n);
  };
  auto hook = [&](int step, int steps, const float* x) {
    for (int64_t i = 0; i < n; ++i)
      if (!std::isfinite(x[i]))
        throw std::runtime_error("numerical guard: non-finite sample after step " + std::to_string(step));
    if (opt.progress) draw_progress(step + 1, steps, std::chrono::duration<double>(Clock::now() - t0).count());
    if (io::interrupt_requested()) throw io::Interrupted();
  };
  sampler::sample(solver, res.video.data(), n, sigmas, velocity, hook);
  res.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  res.seconds_per_step = res.seconds / opt.steps;
  res.attn_report = backend.report_json();
  res.skipped_steps = cache.skipped_steps();
  res.model_steps = cache.computed_steps();

  if (model.decoder) {
    const auto d0 = Clock::now();
    res.frames = model.decoder->decode(res.video.data(), opt.shape, cfg.in_channels);
    res.decode_seconds = std::chrono::duration<double>(Clock::now() - d0).count();
  }
  return res;
}

}  // namespace ditgen::pipeline
