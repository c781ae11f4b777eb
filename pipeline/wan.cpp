#include "pipeline/wan.h"

#include <cmath>
#include <filesystem>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <sstream>
#include <stdexcept>

#include "cond/text_states.h"
#include "dit/gemm_bf16.h"
#include "io/safetensors.h"
#include "io/wan_dit.h"
#include "io/wan_vae.h"
#include "pipeline/memory.h"

namespace ditgen::pipeline {

namespace {
// [C, T, H, W] <-> (T, H, W, C), P = T H W.
void channels_last(const float* src, float* dst, int64_t C, int64_t P) {
  for (int64_t c = 0; c < C; ++c)
    for (int64_t p = 0; p < P; ++p) dst[p * C + c] = src[c * P + p];
}
void channels_first(const float* src, float* dst, int64_t C, int64_t P) {
  for (int64_t c = 0; c < C; ++c)
    for (int64_t p = 0; p < P; ++p) dst[c * P + p] = src[p * C + c];
}
}  // namespace

bool is_wan_spec(const std::string& spec) {
  std::error_code ec;
  if (std::filesystem::is_directory(spec, ec)) return true;
  const std::string ext = ".safetensors";
  return spec.size() > ext.size() && spec.compare(spec.size() - ext.size(), ext.size(), ext) == 0;
}

Model load_wan_model(const std::string& spec, const LoadOptions& options) {
  const io::WanDiTFiles files = io::locate_wan_dit(spec);
  io::WanDiTSettings settings = io::read_wan_config(files.config);
  settings.dtype = options.dtype.value_or(gemm::bf16_gemm_available() ? DType::BF16 : DType::F32);
  if (settings.dtype == DType::BF16 && !gemm::bf16_gemm_available())
    throw std::invalid_argument("--dtype bf16 needs a CPU with AVX-512 BF16, which this one lacks: use --dtype float32");
  const io::SafetensorsSet set = io::open_wan_dit(files);
  const DiTConfig cfg = io::wan_dit_config(set, settings);

  // Refuse before reading gigabytes: the weights alone against the memory there is.
  const int64_t need = io::wan_dit_weight_bytes(cfg, settings.dtype);
  const int64_t limit = options.memory_limit_bytes > 0 ? options.memory_limit_bytes : available_memory_bytes();
  if (need > limit) {
    DiTWeights probe;
    std::ostringstream s;
    s.precision(3);
    s << "the Wan2.1 DiT '" << spec << "' (" << double(probe.parameter_count(cfg)) / 1e9 << "B parameters, "
      << cfg.num_layers << " blocks of width " << cfg.dim << ") needs about " << need / (1 << 20) << " MiB for its weights in "
      << (settings.dtype == DType::BF16 ? "bf16" : "float32") << ", before activations, but only " << limit / (1 << 20)
      << " MiB are available";
    if (settings.dtype == DType::F32) s << "; --dtype bf16 halves the weights";
    throw std::runtime_error(s.str());
  }

  io::LoadedModel m = io::load_wan_dit(set, settings);
  apply_loras(m.weights, m.config, options.loras);
  Model model;
  model.family = "wan2.1-t2v";
  model.dtype = settings.dtype == DType::BF16 ? "bf16" : "float32";
  model.conditioner = std::make_unique<TextStatesConditioner>(m.config.ctx_len, m.config.ctx_dim);
  model.dit = std::make_unique<DiTModel>(m.config, std::move(m.weights));
  model.geometry = LatentGeometry{4, 8, true};
  // A folder's VAE decodes the latents into frames; without one the run's output is its latents.
  std::error_code ec;
  if (std::filesystem::is_directory(spec, ec)) {
    try {
      std::unique_ptr<vae::WanVae> v = io::load_wan_vae(io::locate_wan_vae(spec), settings.dtype, false);
      v->tiling = options.vae_tiling;
      model.decoder = std::move(v);
    } catch (const io::MissingFile& e) {
      model.no_decoder_reason = e.what();
    }
  } else {
    model.no_decoder_reason = "a single DiT file has no VAE: give the model folder (with Wan2.1_VAE.safetensors)";
  }
  model.defaults.steps = m.config.sample_steps;
  model.defaults.cfg = m.config.sample_cfg;
  model.defaults.shift = m.config.sample_shift;
  model.defaults.frames = 81;
  model.defaults.height = m.config.frame_height;
  model.defaults.width = m.config.frame_width;
  model.defaults.integer_timesteps = true;
#if defined(__GLIBC__)
  // The load freed one read buffer per tensor (tens of MB each, which raises glibc's mmap
  // threshold so that later ones come from the heap): give the free pages back (about 0.75 GB
  // of peak RSS for the 1.3B model).
  malloc_trim(0);
#endif
  return model;
}

void read_context_file(const std::string& path, Condition& c) {
  const io::SafetensorsFile f = io::SafetensorsFile::open(path);
  if (!f.has("prompt"))
    throw std::runtime_error("context file '" + path + "' has no tensor 'prompt' (the prompt's text-encoder states, [tokens, width])");
  for (const char* name : {"prompt", "negative_prompt"}) {
    if (!f.has(name)) continue;
    const io::SafetensorsTensor& t = f.tensor(name);
    if (t.shape.size() != 2 || t.dtype == DType::I64)
      throw std::runtime_error("context file '" + path + "': tensor '" + name + "' is " + dtype_name(t.dtype) + " " +
                               shape_string(t.shape) + ", expected float32, bf16 or float16 [tokens, width]");
    Tensor& dst = std::string(name) == "prompt" ? c.prompt : c.negative_prompt;
    dst.reset(t.shape, DType::F32);
    f.read_float(name, dst.data());
  }
}

std::vector<float> read_noise_file(const std::string& path, const LatentShape& shape, int channels) {
  const io::SafetensorsFile f = io::SafetensorsFile::open(path);
  const std::vector<int64_t> want = {channels, shape.frames, shape.height, shape.width};
  if (!f.has("noise")) throw std::runtime_error("noise file '" + path + "' has no tensor 'noise' " + shape_string(want));
  const io::SafetensorsTensor& t = f.tensor("noise");
  if (t.shape != want || t.dtype == DType::I64)
    throw std::runtime_error("noise file '" + path + "': tensor 'noise' is " + dtype_name(t.dtype) + " " +
                             shape_string(t.shape) + ", expected a float " + shape_string(want) +
                             " [channels, latent frames, height / 8, width / 8] for this run's size");
  const std::vector<float> cthw = f.to_float("noise");
  std::vector<float> x(cthw.size());
  channels_last(cthw.data(), x.data(), channels, int64_t(shape.frames) * shape.height * shape.width);
  return x;
}

std::vector<float> read_latents_file(const std::string& path, LatentShape& shape, int& channels) {
  const io::SafetensorsFile f = io::SafetensorsFile::open(path);
  if (!f.has("latents"))
    throw std::runtime_error("latents file '" + path + "' has no tensor 'latents' [channels, frames, height, width]");
  const io::SafetensorsTensor& t = f.tensor("latents");
  if (t.shape.size() != 4 || t.dtype == DType::I64)
    throw std::runtime_error("latents file '" + path + "': tensor 'latents' is " + dtype_name(t.dtype) + " " +
                             shape_string(t.shape) + ", expected float [channels, frames, height, width]");
  for (int64_t d : t.shape)
    if (d < 1 || d > (1 << 16))
      throw std::runtime_error("latents file '" + path + "': tensor 'latents' has shape " + shape_string(t.shape) +
                               ", expected sides of 1 to 65536");
  channels = int(t.shape[0]);
  shape = LatentShape{int(t.shape[1]), int(t.shape[2]), int(t.shape[3])};
  const std::vector<float> cthw = f.to_float("latents");
  for (size_t i = 0; i < cthw.size(); ++i)
    if (!std::isfinite(cthw[i]))
      throw std::runtime_error("latents file '" + path + "': tensor 'latents' holds a non-finite value (" +
                               std::to_string(cthw[i]) + ") at element " + std::to_string(i));
  std::vector<float> x(cthw.size());
  channels_last(cthw.data(), x.data(), channels, int64_t(shape.frames) * shape.height * shape.width);
  return x;
}

void write_latents_file(const std::string& path, const std::vector<float>& latents, const LatentShape& shape,
                        int channels, bool overwrite, io::OutputBatch* batch) {
  std::vector<float> cthw(latents.size());
  channels_first(latents.data(), cthw.data(), channels, int64_t(shape.frames) * shape.height * shape.width);
  auto out = std::make_unique<io::AtomicOutput>(path, overwrite);
  io::write_safetensors(out->temp_path(), {{"latents", DType::F32, {channels, shape.frames, shape.height, shape.width},
                                            cthw.data(), nullptr}},
                        {{"layout", "[channels, latent frames, height, width]"}}, true);
  io::publish(std::move(out), batch);
}

}  // namespace ditgen::pipeline
