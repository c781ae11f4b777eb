// ditgen inspect: the config and tensor table of a weight file.
#include <iomanip>
#include <iostream>

#include "apps/cli_common.h"
#include "apps/commands.h"
#include "io/wan_dit.h"
#include "io/weights_h5.h"
#include "pipeline/wan.h"

namespace ditgen::app {
namespace {

struct InspectArgs {
  std::string model, json;
  bool overwrite = false;
};

void run_inspect(const InspectArgs& a) {
  if (!a.json.empty()) check_output_path(a.json, a.overwrite, false);
  const bool wan = pipeline::is_wan_spec(a.model);
  io::LoadedModel m;
  nlohmann::json j, tensors = nlohmann::json::array();
  std::cout << "model: " << a.model << "\n";
  if (wan) {
    const io::WanDiTFiles files = io::locate_wan_dit(a.model);
    const io::WanDiTSettings settings = io::read_wan_config(files.config);
    const io::SafetensorsSet set = io::open_wan_dit(files);
    m = io::inspect_wan_dit(set, settings);
    std::cout << "family: wan2.1-t2v\nconfig_file: " << files.config << "\nweights: " << files.weights << " ("
              << set.files().size() << " file" << (set.files().size() == 1 ? "" : "s") << ")\n";
    j["family"] = "wan2.1-t2v";
    j["config_file"] = files.config;
    j["weights"] = files.weights;
    for (const auto& [name, dt] : {std::pair{"bf16", DType::BF16}, std::pair{"float32", DType::F32}}) {
      const double mib = double(io::wan_dit_weight_bytes(m.config, dt)) / (1 << 20);
      std::cout << "weights_in_memory_" << name << "_mib: " << std::fixed << std::setprecision(1) << mib
                << std::defaultfloat << "\n";
      j[std::string("weights_in_memory_") + name + "_mib"] = mib;
    }
  } else {
    m = io::inspect_weights(a.model);
    std::cout << "format_version: " << io::kFormatVersion << "\n";
    j["format_version"] = io::kFormatVersion;
  }
  int64_t params = 0;
  std::cout << "config:\n";
  for (const auto& [k, v] : m.config.fields()) {
    std::cout << "  " << std::left << std::setw(14) << k << " " << v << "\n";
    j["config"][k] = v;
  }
  std::cout << "tensors:\n";
  for (const auto& t : m.tensors) {
    int64_t n = 1;
    for (int64_t d : t.shape) n *= d;
    params += n;
    std::cout << "  " << std::left << std::setw(40) << t.name << " " << std::setw(22) << shape_string(t.shape) << " "
              << t.dtype << "\n";
    tensors.push_back({{"name", t.name}, {"shape", t.shape}, {"dtype", t.dtype}});
  }
  std::cout << "parameters: " << params << "\n";
  for (const auto& w : m.warnings) std::cerr << "warning: " << w << "\n";
  if (!a.json.empty()) {
    j["model"] = a.model;
    j["tensors"] = tensors;
    j["parameters"] = params;
    write_json(a.json, j, a.overwrite);
  }
}

const Registrar reg("inspect", "Print the config and tensor table of a weight file or a Wan2.1 model folder", [](CLI::App& sub) {
  auto a = std::make_shared<InspectArgs>();
  sub.add_option("--model", a->model, "Weight file (HDF5), or a Wan2.1 model folder or DiT .safetensors file")->required();
  sub.add_option("--json", a->json, "Also write the table as JSON");
  sub.add_flag("--overwrite", a->overwrite, "Replace an existing JSON file");
  sub.callback([a] { run_inspect(*a); });
});

}  // namespace
}  // namespace ditgen::app
