// ditgen calibrate: one dense generation run that measures the exact attention and writes a
// calibration file: PAROAttention's (per layer and head: axis order and static block mask) for
// `--attn paro:calib=FILE`, or Sliding Tile Attention's window search (per step, layer and
// head: the candidate window of least output error) for `--attn window:calib=FILE`.
#include <iostream>
#include <map>
#include <memory>

#include "apps/cli_common.h"
#include "apps/commands.h"
#include "attention/methods/paro.h"
#include "attention/methods/sta.h"

namespace ditgen::app {
namespace {

struct CalibrateArgs {
  GenerationFlags gen;
  std::string method = "paro";
  std::string out;
  int block = 64, every = 1;
  double mass = 0.95, sample = 0.25;
  std::string windows, tile = "4x4x4";
  int volume = 0;
  bool sink = true;
  bool overwrite = false;
  std::map<std::string, const CLI::Option*> given;  // the method-specific flags
};

// The dense generation run that the calibrating backend watches.
pipeline::GenerateResult calibration_run(const CalibrateArgs& a, attn::AttentionBackend& calib) {
  pipeline::Model model = a.gen.load_model();
  pipeline::GenerateOptions opt = a.gen.options(model);
  try {
    return pipeline::generate(model, calib, opt);
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  }
}

// Flags of the other method are refused, not ignored.
void check_flags_of(const CalibrateArgs& a, const std::vector<std::string>& foreign) {
  for (const auto& f : foreign)
    if (a.given.at(f)->count() > 0) throw UsageError(f + " does not apply to --method " + a.method);
}

void run_sta(const CalibrateArgs& a) {
  check_flags_of(a, {"--mass", "--sample", "--every"});
  if ((a.given.at("--windows")->count() > 0) == (a.given.at("--volume")->count() > 0))
    throw UsageError("--method sta needs exactly one of --windows LIST (candidate windows in tiles, e.g. 1x4x4,4x2x2) and --volume N "
                     "(every window of N tiles)");
  std::vector<attn::TileShape> windows;
  attn::TileShape tile;
  try {
    tile = attn::parse_tile(a.tile);
    if (!a.windows.empty()) {
      size_t start = 0;
      while (true) {
        const size_t end = a.windows.find(',', start);
        windows.push_back(attn::parse_tile(a.windows.substr(start, end == std::string::npos ? std::string::npos : end - start)));
        if (end == std::string::npos) break;
        start = end + 1;
      }
    }
  } catch (const std::invalid_argument& e) {
    throw UsageError(std::string("--tile/--windows: ") + e.what());
  }
  if (a.given.at("--volume")->count() > 0 && a.volume < 1) throw UsageError("--volume " + std::to_string(a.volume) + " must be at least 1 tile");
  attn::StaCalibrator calib(tile, a.sink, a.block, windows, a.volume, a.gen.kernel_options());
  const pipeline::GenerateResult r = calibration_run(a, calib);
  const attn::StaCalibration c = calib.result();
  c.write(a.out);
  std::map<std::string, int> count;
  for (int w : c.choice) ++count[c.windows[size_t(w)].str()];
  std::cerr << "wrote " << a.out << ": " << c.steps << " steps x " << c.layers << " layers x " << c.heads << " heads, grid " << c.tp << "x"
            << c.hp << "x" << c.wp << ", tile " << c.tile.str() << "; chosen:";
  for (const auto& [w, n] : count) std::cerr << " " << w << " " << n;
  std::cerr << " (search " << calib.search_seconds() << " s of " << r.seconds << " s)\n";
}

void run_calibrate(const CalibrateArgs& a) {
  set_threads(a.gen.threads);
  check_output_path(a.out, a.overwrite, false);
  if (a.block < 1 || a.block > 1024) throw UsageError("--block " + std::to_string(a.block) + " is out of range: expected 1 to 1024");
  if (a.method == "sta") return run_sta(a);
  check_flags_of(a, {"--windows", "--volume", "--tile", "--sink"});
  if (!(a.mass > 0 && a.mass <= 1)) throw UsageError("--mass " + std::to_string(a.mass) + " is out of range: expected (0, 1]");
  if (!(a.sample > 0 && a.sample <= 1)) throw UsageError("--sample " + std::to_string(a.sample) + " is out of range: expected (0, 1]");
  if (a.every < 1) throw UsageError("--every " + std::to_string(a.every) + " must be at least 1");
  const attn::KernelOptions kopt = a.gen.kernel_options();
  attn::ParoCalibrator calib(a.block, a.mass, a.sample, a.every, kopt);
  const pipeline::GenerateResult r = calibration_run(a, calib);
  const attn::ParoCalibration c = calib.result();
  c.write(a.out);
  double mean = 0;
  for (const auto& p : c.plans) mean += p.density;
  mean /= c.plans.empty() ? 1.0 : double(c.plans.size());
  std::cerr << "wrote " << a.out << ": " << c.layers << " layers x " << c.heads << " heads, grid " << c.tp << "x" << c.hp
            << "x" << c.wp << ", block " << c.block << ", mean block density " << mean << " (statistics "
            << calib.stats_seconds() << " s of " << r.seconds << " s)\n";
}

const Registrar reg("calibrate",
                    "Write a calibration file: PAROAttention's axis order and block mask per layer and head (--method paro), or "
                    "STA's searched window per step, layer and head (--method sta)",
                    [](CLI::App& sub) {
                      auto a = std::make_shared<CalibrateArgs>();
                      a->gen.add(sub);
                      sub.add_option("--method", a->method, "paro or sta")->check(CLI::IsMember({"paro", "sta"}))->capture_default_str();
                      sub.add_option("--out", a->out, "Calibration file to write (JSON)")->required();
                      sub.add_option("--block", a->block, "Block size of the masks")->capture_default_str();
                      a->given["--mass"] = sub.add_option("--mass", a->mass, "paro: attention mass each query block keeps")->capture_default_str();
                      a->given["--sample"] = sub.add_option("--sample", a->sample, "paro: share of query rows measured per call")->capture_default_str();
                      a->given["--every"] = sub.add_option("--every", a->every, "paro: measure every N-th step")->capture_default_str();
                      a->given["--windows"] = sub.add_option("--windows", a->windows, "sta: candidate windows in tiles, TxHxW,...");
                      a->given["--volume"] = sub.add_option("--volume", a->volume, "sta: candidates = every window of this many tiles");
                      a->given["--tile"] = sub.add_option("--tile", a->tile, "sta: tile in tokens TxHxW")->capture_default_str();
                      a->given["--sink"] = sub.add_option("--sink", a->sink, "sta: every query sees the first frame (0 or 1)")->capture_default_str();
                      sub.add_flag("--overwrite", a->overwrite, "Replace an existing file");
                      sub.callback([a] { run_calibrate(*a); });
                    });

}  // namespace
}  // namespace ditgen::app
