#pragma once
// The tensor names of diffusers' AutoencoderKLWan (a diffusers-format folder's vae/) mapped back to
// the release's (Wan2.1_VAE.pth), so that one loader reads both. The two differ in names only:
// diffusers' conversion renames every tensor of the release and keeps its shape and values.
#include <string>
#include <vector>

namespace ditgen::io {

// The file's names are diffusers' (it has `decoder.conv_in.weight`, the release `decoder.conv1.weight`).
bool has_diffusers_wan_vae_names(const std::vector<std::string>& names);

// Resnets per decoder up block: the distinct `decoder.up_blocks.0.resnets.J` of `names` (the
// release numbers an up stage's resnets and its upsampler in one list, diffusers per block).
int diffusers_up_block_resnets(const std::vector<std::string>& names);

// The release's name of `name` (a diffusers AutoencoderKLWan tensor name); names outside that
// scheme come back unchanged, so the loader reports them as the release names it looks for.
std::string wan_vae_release_name(const std::string& name, int up_block_resnets);

}  // namespace ditgen::io
