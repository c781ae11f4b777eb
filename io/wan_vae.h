#pragma once
// Wan2.1's VAE from its release file (`Wan2.1_VAE.pth` converted by tools/wan/convert_pth.py to
// `Wan2.1_VAE.safetensors`, names unchanged: `decoder.conv1.weight`,
// `decoder.upsamples.N.residual.0.gamma`, `conv2.weight`, ...). Widths, block counts and the
// kind of each resampling block come from the tensors' names and shapes.
#include <memory>
#include <stdexcept>
#include <string>

#include "core/dtype.h"
#include "vae/wan_vae.h"

namespace ditgen::io {

// locate_wan_vae found no VAE file (a folder without one is a model whose output is latents).
class MissingFile : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The VAE file of `model`: the file itself, else the folder's Wan2.1_VAE.safetensors. Throws
// MissingFile naming what was looked for (and the conversion script where only the .pth is there).
std::string locate_wan_vae(const std::string& model);

// Loads the decoder (and, with `encoder`, the encoder where the file has one), each tensor checked against the
// width the layers before it give; convolutions in `dtype` (F32 or BF16 packed for the bf16
// GEMM). Throws std::runtime_error naming the file, the tensor, its shape and the one expected.
std::unique_ptr<vae::WanVae> load_wan_vae(const std::string& path, DType dtype, bool encoder = true);

}  // namespace ditgen::io
