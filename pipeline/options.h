#pragma once
// The ranges of a run's options, checked in one place by the library and by the command line
// (which passes the flag's name, e.g. "--steps", so the message names what the user typed).
#include <optional>
#include <string>

#include "vae/tiling.h"

namespace ditgen::pipeline {

inline constexpr int kMaxSteps = 10000;
inline constexpr double kMaxCfg = 100;

// Throws std::invalid_argument "<name> <value> is out of range: expected 1 to 10000".
void check_steps(int steps, const std::string& name);
// Throws std::invalid_argument "<name> <value> is out of range: expected 0 to 100" (NaN too).
void check_cfg(double cfg, const std::string& name);

// The VAE tiling of --vae-tile PX [--vae-tile-overlap PX] (output pixels, multiples of 8; the
// overlap defaults to 64, the band diffusers' tiled Wan decode blends). Off without a tile size.
// Throws std::invalid_argument naming the flag, the value and what was expected.
vae::VaeTiling vae_tiling_from_pixels(std::optional<int> tile, std::optional<int> overlap);

}  // namespace ditgen::pipeline
