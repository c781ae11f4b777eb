// ditgen masks: the block maps an attention spec builds for a video size, with their densities.
#include <iomanip>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "apps/commands.h"
#include "core/numbers.h"
#include "attention/mask/mask.h"
#include "attention/mask/reorder.h"
#include "attention/sparse/sparse_backend.h"
#include "attention/spec.h"

namespace ditgen::app {
namespace {

struct MasksArgs {
  std::string attn = "dense";
  int frames = 16, height = 64, width = 64;
  std::string patch = "1x4x4";
  bool json = false;
};

void run_masks(const MasksArgs& a) {
  attn::TileShape patch;
  try {
    patch = attn::parse_tile(a.patch);
  } catch (const std::invalid_argument& e) {
    throw UsageError(std::string("--patch: ") + e.what());
  }
  if (a.frames < 1 || a.height < 1 || a.width < 1 || a.frames % patch.t || a.height % patch.h || a.width % patch.w)
    throw UsageError("--frames " + std::to_string(a.frames) + " --height " + std::to_string(a.height) + " --width " +
                     std::to_string(a.width) + " must be positive multiples of the patch " + patch.str());
  std::unique_ptr<attn::AttentionBackend> backend;
  try {
    backend = attn::make_backend(a.attn);
  } catch (const std::invalid_argument& e) {
    throw UsageError(std::string("--attn: ") + e.what());
  }
  const int tp = a.frames / patch.t, hp = a.height / patch.h, wp = a.width / patch.w;
  const TokenLayout layout = backend->layout(tp, hp, wp);
  std::vector<std::pair<std::string, attn::BlockMap>> maps;
  if (auto* sb = dynamic_cast<attn::SparseBackend*>(backend.get())) {
    maps = sb->preview(layout);
  } else {
    const std::string spec = backend->spec();
    const size_t at = spec.find("block=");
    // the canonical spec of the dense backend: "dense" or "dense:block=N", N checked when parsed
    const int block = at == std::string::npos ? 64 : parse_int(spec.substr(at + 6)).value();
    maps.emplace_back("dense", attn::BlockMap::dense(layout.tokens(), block));
  }
  nlohmann::json j;
  j["spec"] = backend->spec();
  j["grid"] = {tp, hp, wp};
  j["tokens"] = layout.tokens();
  j["layout"] = layout.name();
  j["maps"] = nlohmann::json::array();
  if (!a.json) {
    std::cout << "spec: " << backend->spec() << "\ngrid: " << tp << "x" << hp << "x" << wp << " = " << layout.tokens()
              << " tokens, layout " << layout.name() << "\n";
    std::cout << std::left << std::setw(24) << "map" << std::right << std::setw(8) << "block" << std::setw(7) << "maps"
              << std::setw(14) << "pair_density" << std::setw(18) << "attended_density" << std::setw(15)
              << "block_density" << std::setw(18) << "partial_fraction" << "\n";
  }
  for (const auto& [name, map] : maps) {
    const attn::MapStats s = attn::map_stats(map, name);
    j["maps"].push_back({{"name", s.name},
                         {"tokens", s.tokens},
                         {"block", s.block},
                         {"num_maps", s.num_maps},
                         {"pair_density", s.pair_density},
                         {"attended_density", s.attended_density},
                         {"block_density", s.block_density},
                         {"partial_fraction", s.partial_fraction}});
    if (!a.json)
      std::cout << std::left << std::setw(24) << s.name << std::right << std::setw(8) << s.block << std::setw(7)
                << s.num_maps << std::fixed << std::setprecision(4) << std::setw(14) << s.pair_density << std::setw(18)
                << s.attended_density << std::setw(15) << s.block_density << std::setw(18) << s.partial_fraction
                << "\n";
  }
  // A method whose every map comes from the call's own q and k (svg2's clusters) has none to
  // show ahead of a run: say so rather than print an empty table.
  if (maps.empty()) {
    j["note"] = "this method's maps are made per call from q and k; none exists before a run";
    if (!a.json) std::cout << "(no maps: " << j["note"].get<std::string>() << ")\n";
  }
  if (a.json) std::cout << j.dump(2) << "\n";
}

const Registrar reg("masks", "Print the block maps of an attention spec for a video size, with their densities",
                    [](CLI::App& sub) {
                      auto a = std::make_shared<MasksArgs>();
                      sub.add_option("--attn", a->attn, "Attention spec NAME[:key=value,...]")->capture_default_str();
                      sub.add_option("--frames", a->frames, "Frames T (pixels)")->capture_default_str();
                      sub.add_option("--height", a->height, "Height H (pixels)")->capture_default_str();
                      sub.add_option("--width", a->width, "Width W (pixels)")->capture_default_str();
                      sub.add_option("--patch", a->patch, "Patch size TxHxW")->capture_default_str();
                      sub.add_flag("--json", a->json, "Print JSON instead of a table");
                      sub.callback([a] { run_masks(*a); });
                    });

}  // namespace
}  // namespace ditgen::app
