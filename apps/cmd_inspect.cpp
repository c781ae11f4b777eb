// ditgen inspect: the config and tensor table of a weight file.
#include <iomanip>
#include <iostream>

#include "apps/cli_common.h"
#include "apps/commands.h"
#include "io/weights_h5.h"

namespace ditgen::app {
namespace {

struct InspectArgs {
  std::string model, json;
  bool overwrite = false;
};

void run_inspect(const InspectArgs& a) {
  if (!a.json.empty()) check_output_path(a.json, a.overwrite, false);
  io::LoadedModel m = io::inspect_weights(a.model);
  int64_t params = 0;
  nlohmann::json j, tensors = nlohmann::json::array();
  std::cout << "model: " << a.model << "\nformat_version: " << io::kFormatVersion << "\nconfig:\n";
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
    j["format_version"] = io::kFormatVersion;
    j["tensors"] = tensors;
    j["parameters"] = params;
    write_json(a.json, j, a.overwrite);
  }
}

const Registrar reg("inspect", "Print the config and tensor table of a weight file", [](CLI::App& sub) {
  auto a = std::make_shared<InspectArgs>();
  sub.add_option("--model", a->model, "Weight file (HDF5)")->required();
  sub.add_option("--json", a->json, "Also write the table as JSON");
  sub.add_flag("--overwrite", a->overwrite, "Replace an existing JSON file");
  sub.callback([a] { run_inspect(*a); });
});

}  // namespace
}  // namespace ditgen::app
