// ditgen attnmap: the spatiotemporal energy decay of a real model's attention. Runs a dense
// generation and, at a few steps, measures for sampled query rows of every layer and head the
// exact softmax mass against temporal distance (frames) and spatial distance (patches).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <opencv2/imgproc.hpp>
#include <random>
#include <map>
#include <set>
#include <tuple>
#include <sstream>

#include "apps/cli_common.h"
#include "apps/commands.h"
#include "attention/backend.h"
#include "io/atomic_file.h"
#include "io/video.h"

namespace fs = std::filesystem;

namespace ditgen::app {
namespace {

// Accumulates mass and key counts per (step, layer, head, distance) for both axes.
class DecayProbe : public attn::DenseBackend {
 public:
  DecayProbe(std::set<int> steps, int rows, uint64_t seed) : steps_(std::move(steps)), rows_(rows), seed_(seed) {}

  struct Cell {
    double mass = 0, keys = 0, rows = 0;
  };
  // key: step, layer, head, axis (0 temporal, 1 spatial), distance
  std::map<std::tuple<int, int, int, int, int>, Cell> cells;

  attn::AttendReport attend(const attn::AttentionInputs& in, float* out, const attn::AttentionContext& ctx) override {
    attn::AttendReport report = attn::DenseBackend::attend(in, out, ctx);
    if (!steps_.count(ctx.step)) return report;
    const TokenLayout& L = *in.layout;
    std::mt19937_64 rng(seed_ * 1000003 + uint64_t(ctx.step) * 131 + uint64_t(ctx.layer));
    std::uniform_int_distribution<int64_t> pick(0, in.tokens - 1);
    const int heads = in.heads;  // conditional pass only (batch entry 0)
    std::vector<int64_t> rows(size_t(heads) * rows_);
    for (auto& r : rows) r = pick(rng);
    const double scale = 1.0 / std::sqrt(double(in.head_dim));
    const int tmax = L.frames(), smax = std::max(L.height(), L.width());
    std::vector<std::vector<double>> tm(rows.size(), std::vector<double>(size_t(tmax))),
        sm(rows.size(), std::vector<double>(size_t(smax))), tk = tm, sk = sm;
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t i = 0; i < int64_t(rows.size()); ++i) {
      const int h = int(i / rows_);
      const int64_t qi = rows[size_t(i)];
      const float* q = in.q + (int64_t(h) * in.tokens + qi) * in.head_dim;
      const float* k = in.k + int64_t(h) * in.tokens * in.head_dim;
      std::vector<double> s(static_cast<size_t>(in.tokens));
      double mx = -INFINITY;
      for (int64_t j = 0; j < in.tokens; ++j) {
        double d = 0;
        for (int c = 0; c < in.head_dim; ++c) d += double(q[c]) * k[j * in.head_dim + c];
        s[size_t(j)] = d * scale;
        mx = std::max(mx, s[size_t(j)]);
      }
      double sum = 0;
      for (auto& v : s) sum += (v = std::exp(v - mx));
      const Coord cq = L.coord(qi);
      for (int64_t j = 0; j < in.tokens; ++j) {
        const Coord ck = L.coord(j);
        const int dt = std::abs(ck.t - cq.t), ds = std::max(std::abs(ck.h - cq.h), std::abs(ck.w - cq.w));
        tm[size_t(i)][size_t(dt)] += s[size_t(j)] / sum;
        tk[size_t(i)][size_t(dt)] += 1;
        sm[size_t(i)][size_t(ds)] += s[size_t(j)] / sum;
        sk[size_t(i)][size_t(ds)] += 1;
      }
    }
    for (size_t i = 0; i < rows.size(); ++i) {
      const int h = int(i / size_t(rows_));
      for (int d = 0; d < tmax; ++d) add(ctx, h, 0, d, tm[i][size_t(d)], tk[i][size_t(d)]);
      for (int d = 0; d < smax; ++d) add(ctx, h, 1, d, sm[i][size_t(d)], sk[i][size_t(d)]);
    }
    return report;
  }

 private:
  void add(const attn::AttentionContext& ctx, int h, int axis, int d, double mass, double keys) {
    if (keys == 0) return;
    Cell& c = cells[{ctx.step, ctx.layer, h, axis, d}];
    c.mass += mass;
    c.keys += keys;
    c.rows += 1;
  }
  std::set<int> steps_;
  int rows_;
  uint64_t seed_;
};

struct AttnmapArgs {
  GenerationFlags gen;
  std::string out_dir;
  std::string steps = "";
  int rows = 16;
  bool overwrite = false;
};

// Line plot of log10(mass per key) against distance, one curve per layer.
void plot(const std::string& path, const std::string& title, const std::vector<std::vector<double>>& curves,
          bool overwrite) {
  const int W = 720, H = 480, left = 70, right = 150, top = 40, bottom = 50;
  cv::Mat img(H, W, CV_8UC3, cv::Scalar(255, 255, 255));
  double lo = 1e300, hi = -1e300;
  size_t dmax = 1;
  for (const auto& c : curves) {
    dmax = std::max(dmax, c.size());
    for (double v : c)
      if (v > 0) lo = std::min(lo, std::log10(v)), hi = std::max(hi, std::log10(v));
  }
  if (!(hi > lo)) lo = hi - 1;
  lo = std::floor(lo), hi = std::ceil(hi);
  auto px = [&](double d) { return left + int((W - left - right) * d / std::max<double>(1, double(dmax - 1))); };
  auto py = [&](double v) { return top + int((H - top - bottom) * (hi - std::log10(v)) / (hi - lo)); };
  cv::rectangle(img, {left, top}, {W - right, H - bottom}, {0, 0, 0});
  for (double e = lo; e <= hi; e += 1) {
    cv::putText(img, "1e" + std::to_string(int(e)), {5, py(std::pow(10, e)) + 4}, cv::FONT_HERSHEY_SIMPLEX, 0.4, {0, 0, 0});
    cv::line(img, {left, py(std::pow(10, e))}, {W - right, py(std::pow(10, e))}, {220, 220, 220});
  }
  for (size_t d = 0; d < dmax; d += std::max<size_t>(1, dmax / 10))
    cv::putText(img, std::to_string(d), {px(double(d)) - 4, H - bottom + 16}, cv::FONT_HERSHEY_SIMPLEX, 0.4, {0, 0, 0});
  cv::putText(img, title, {left, 25}, cv::FONT_HERSHEY_SIMPLEX, 0.5, {0, 0, 0});
  for (size_t l = 0; l < curves.size(); ++l) {
    const double hue = 150.0 * double(l) / std::max<size_t>(1, curves.size() - 1);
    cv::Mat hsv(1, 1, CV_8UC3, cv::Scalar(hue, 220, 200)), bgr;
    cv::cvtColor(hsv, bgr, cv::COLOR_HSV2BGR);
    const cv::Scalar col(bgr.at<cv::Vec3b>(0)[0], bgr.at<cv::Vec3b>(0)[1], bgr.at<cv::Vec3b>(0)[2]);
    for (size_t d = 1; d < curves[l].size(); ++d)
      if (curves[l][d - 1] > 0 && curves[l][d] > 0)
        cv::line(img, {px(double(d - 1)), py(curves[l][d - 1])}, {px(double(d)), py(curves[l][d])}, col, 2);
    cv::putText(img, "layer " + std::to_string(l), {W - right + 10, top + 16 * int(l + 1)}, cv::FONT_HERSHEY_SIMPLEX, 0.45, col);
  }
  cv::Mat rgb;
  cv::cvtColor(img, rgb, cv::COLOR_BGR2RGB);
  io::write_png(path, rgb.data, rgb.rows, rgb.cols, 3, overwrite);
}

void run_attnmap(const AttnmapArgs& a) {
  set_threads(a.gen.threads);
  std::error_code ec;
  if (!fs::is_directory(a.out_dir, ec)) throw UsageError("--out-dir '" + a.out_dir + "' does not exist");
  if (!io::directory_writable(a.out_dir)) throw UsageError("--out-dir '" + a.out_dir + "' is not writable");
  if (a.rows < 1 || a.rows > 4096) throw UsageError("--rows " + std::to_string(a.rows) + " is out of range: expected 1 to 4096");
  pipeline::Model model = a.gen.load_model();
  pipeline::GenerateOptions opt = a.gen.options(model);
  std::set<int> steps;
  if (a.steps.empty()) {
    steps = {0, opt.steps / 4, opt.steps / 2, opt.steps - 1};
  } else {
    for (int s : parse_int_list(a.steps, "--steps-probed")) {
      if (s < 0 || s >= opt.steps)
        throw UsageError("--steps-probed: step " + std::to_string(s) + " is out of range 0 to " + std::to_string(opt.steps - 1));
      steps.insert(s);
    }
  }
  io::install_interrupt_handlers();
  DecayProbe probe(steps, a.rows, opt.seed);
  pipeline::generate(model, probe, opt);

  std::ostringstream csv;
  csv << "step,layer,head,axis,distance,mass,keys,mass_per_key\n";
  const int layers = model.config().num_layers;
  std::vector<std::vector<double>> tcurve(static_cast<size_t>(layers)), scurve(static_cast<size_t>(layers));
  std::map<std::tuple<int, int, int>, std::pair<double, double>> pooled;  // layer, axis, d -> (mass, keys)
  for (const auto& [key, c] : probe.cells) {
    const auto [step, layer, head, axis, d] = key;
    csv << step << "," << layer << "," << head << "," << (axis ? "spatial" : "temporal") << "," << d << ","
        << c.mass / c.rows << "," << c.keys / c.rows << "," << c.mass / c.keys << "\n";
    auto& p = pooled[{layer, axis, d}];
    p.first += c.mass;
    p.second += c.keys;
  }
  for (const auto& [key, p] : pooled) {
    const auto [layer, axis, d] = key;
    auto& curve = axis ? scurve[size_t(layer)] : tcurve[size_t(layer)];
    if (int(curve.size()) <= d) curve.resize(size_t(d) + 1, 0.0);
    curve[size_t(d)] = p.first / p.second;
  }
  const std::string csv_path = (fs::path(a.out_dir) / "attnmap.csv").string();
  {
    io::AtomicOutput out(csv_path, a.overwrite);
    std::ofstream(out.temp_path()) << csv.str();
    out.commit();
  }
  plot((fs::path(a.out_dir) / "temporal_decay.png").string(),
       "attention mass per key vs temporal distance (frames), mean over heads and probed steps", tcurve, a.overwrite);
  plot((fs::path(a.out_dir) / "spatial_decay.png").string(),
       "attention mass per key vs spatial distance (patches, Chebyshev), mean over heads and steps", scurve, a.overwrite);
  std::printf("%-6s %s\n", "layer", "mass per key at temporal distance 0, 1, 2, 4, 8 (relative to distance 0)");
  for (int l = 0; l < layers; ++l) {
    std::printf("%-6d", l);
    for (size_t d : {0, 1, 2, 4, 8})
      if (d < tcurve[size_t(l)].size()) std::printf(" %9.4f", tcurve[size_t(l)][d] / tcurve[size_t(l)][0]);
    std::printf("\n");
  }
  std::cerr << "wrote " << csv_path << ", temporal_decay.png and spatial_decay.png in " << a.out_dir << "\n";
}

const Registrar reg("attnmap", "Measure the spatiotemporal energy decay of a model's attention (CSV and PNG plots)",
                    [](CLI::App& sub) {
                      auto a = std::make_shared<AttnmapArgs>();
                      a->gen.add(sub);
                      sub.add_option("--out-dir", a->out_dir, "Directory for attnmap.csv and the plots")->required();
                      sub.add_option("--steps-probed", a->steps, "Steps to probe, e.g. 0,5,10 (default: 0, 1/4, 1/2, last)");
                      sub.add_option("--rows", a->rows, "Query rows sampled per head, layer and probed step");
                      sub.add_flag("--overwrite", a->overwrite, "Replace existing output files");
                      sub.callback([a] { run_attnmap(*a); });
                    });

}  // namespace
}  // namespace ditgen::app
