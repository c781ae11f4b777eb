// ditgen calibrate: one dense generation run that records block-mass statistics of the exact
// attention maps and writes a PAROAttention calibration file (per layer and head: axis order
// and static block mask) for `--attn paro:calib=FILE`.
#include <iostream>
#include <memory>

#include "apps/cli_common.h"
#include "apps/commands.h"
#include "attention/methods/paro.h"

namespace ditgen::app {
namespace {

struct CalibrateArgs {
  GenerationFlags gen;
  std::string out;
  int block = 64, every = 1;
  double mass = 0.95, sample = 0.25;
  bool overwrite = false;
};

void run_calibrate(const CalibrateArgs& a) {
  set_threads(a.gen.threads);
  check_output_path(a.out, a.overwrite, false);
  if (a.block < 1 || a.block > 1024) throw UsageError("--block " + std::to_string(a.block) + " is out of range: expected 1 to 1024");
  if (!(a.mass > 0 && a.mass <= 1)) throw UsageError("--mass " + std::to_string(a.mass) + " is out of range: expected (0, 1]");
  if (!(a.sample > 0 && a.sample <= 1)) throw UsageError("--sample " + std::to_string(a.sample) + " is out of range: expected (0, 1]");
  if (a.every < 1) throw UsageError("--every " + std::to_string(a.every) + " must be at least 1");
  const attn::KernelOptions kopt = a.gen.kernel_options();
  attn::ParoCalibrator calib(a.block, a.mass, a.sample, a.every, kopt);
  pipeline::Model model = a.gen.load_model();
  pipeline::GenerateOptions opt = a.gen.options(model);
  pipeline::GenerateResult r;
  try {
    r = pipeline::generate(model, calib, opt);
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  }
  const attn::ParoCalibration c = calib.result();
  c.write(a.out);
  double mean = 0;
  for (const auto& p : c.plans) mean += p.density;
  mean /= c.plans.empty() ? 1.0 : double(c.plans.size());
  std::cerr << "wrote " << a.out << ": " << c.layers << " layers x " << c.heads << " heads, grid " << c.tp << "x" << c.hp
            << "x" << c.wp << ", block " << c.block << ", mean block density " << mean << " (statistics "
            << calib.stats_seconds() << " s of " << r.seconds << " s)\n";
}

const Registrar reg("calibrate", "Write a PAROAttention calibration file (axis order and block mask per layer and head)",
                    [](CLI::App& sub) {
                      auto a = std::make_shared<CalibrateArgs>();
                      a->gen.add(sub);
                      sub.add_option("--out", a->out, "Calibration file to write (JSON)")->required();
                      sub.add_option("--block", a->block, "Block size of the masks")->capture_default_str();
                      sub.add_option("--mass", a->mass, "Attention mass each query block keeps")->capture_default_str();
                      sub.add_option("--sample", a->sample, "Share of query rows measured per call")->capture_default_str();
                      sub.add_option("--every", a->every, "Measure every N-th step")->capture_default_str();
                      sub.add_flag("--overwrite", a->overwrite, "Replace an existing file");
                      sub.callback([a] { run_calibrate(*a); });
                    });

}  // namespace
}  // namespace ditgen::app
