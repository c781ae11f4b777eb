#pragma once
// The test fixture of a Wan2.1 model folder: the committed tiny DiT (tests/data/wan/, official
// code, docs/wan-reference.md) as config.json + diffusion_pytorch_model.safetensors, with the
// golden sampling run's context.safetensors and noise.safetensors beside it.
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/shape.h"
#include "io/safetensors.h"
#include "tests/test_util.h"

namespace ditgen::test {

inline std::string wan_data_dir() { return std::string(DITGEN_SOURCE_DIR) + "/tests/data/wan/"; }

// A model folder (config.json + diffusion_pytorch_model.safetensors) of the tiny goldens, with
// context.safetensors and noise.safetensors of the golden sampling run beside it.
struct WanFolder {
  test::TempDir dir;
  std::string model, context, noise;
  io::SafetensorsFile sample = io::SafetensorsFile::open(wan_data_dir() + "tiny_dit_sample.safetensors");

  WanFolder() {
    model = (dir.path / "wan").string();
    std::filesystem::create_directory(model);
    std::filesystem::copy_file(wan_data_dir() + "tiny_dit.safetensors", model + "/diffusion_pytorch_model.safetensors");
    std::ifstream in(wan_data_dir() + "tiny_dit_config.json");
    std::ofstream(model + "/config.json") << nlohmann::json::parse(in).at("wan_model").dump(1);
    context = (dir.path / "context.safetensors").string();
    noise = (dir.path / "noise.safetensors").string();
    const std::vector<float> pos = sample.to_float("context"), neg = sample.to_float("negative_context"),
                             nz = sample.to_float("noise");
    io::write_safetensors(context, {{"prompt", DType::F32, sample.tensor("context").shape, pos.data(), nullptr},
                                    {"negative_prompt", DType::F32, sample.tensor("negative_context").shape, neg.data(), nullptr}});
    io::write_safetensors(noise, {{"noise", DType::F32, sample.tensor("noise").shape, nz.data(), nullptr}});
  }
  // The golden run's latent shape and its video size (1 + 4(T - 1) frames, 8x the sides).
  LatentShape latent() const {
    const auto& s = sample.tensor("noise").shape;
    return {int(s[1]), int(s[2]), int(s[3])};
  }
};

}  // namespace ditgen::test
