#include "attention/methods/sta.h"

#include <chrono>
#include <cmath>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "attention/mask/mask.h"
#include "attention/methods/calib_file.h"

namespace ditgen::attn {

// ---------------------------------------------------------------- candidates and selection

std::vector<TileShape> sta_windows(int volume, int nt, int nh, int nw) {
  std::vector<TileShape> r;
  for (int t = 1; t <= nt; ++t)
    for (int h = 1; h <= nh; ++h)
      for (int w = 1; w <= nw; ++w)
        if (t * h * w == volume) r.push_back(TileShape{t, h, w});
  return r;
}

std::vector<int> sta_select(const std::vector<double>& error, int num_windows) {
  if (num_windows < 1 || error.size() % size_t(num_windows) != 0)
    throw std::invalid_argument("sta_select: " + std::to_string(error.size()) + " errors for " + std::to_string(num_windows) + " windows");
  std::vector<int> choice(error.size() / size_t(num_windows), 0);
  for (size_t i = 0; i < choice.size(); ++i)
    for (int w = 1; w < num_windows; ++w)
      if (error[i * size_t(num_windows) + size_t(w)] < error[i * size_t(num_windows) + size_t(choice[i])]) choice[i] = w;
  return choice;
}

// ---------------------------------------------------------------- calibration file

void StaCalibration::write(const std::string& path) const {
  nlohmann::json j;
  j["format"] = "ditgen-sta-calibration";
  j["version"] = 1;
  j["grid"] = {tp, hp, wp};
  j["tile"] = tile.str();
  j["sink"] = sink;
  j["block"] = block;
  j["steps"] = steps;
  j["layers"] = layers;
  j["heads"] = heads;
  nlohmann::json w = nlohmann::json::array();
  for (const auto& x : windows) w.push_back(x.str());
  j["windows"] = w;
  j["choice"] = choice;
  j["error"] = error;
  write_calibration_json(path, j);
}

StaCalibration StaCalibration::read(const std::string& path) {
  const nlohmann::json j = read_calibration_json(path);
  StaCalibration c;
  try {
    if (j.at("format") != "ditgen-sta-calibration" || j.at("version") != 1)
      throw std::runtime_error("not a version 1 ditgen STA calibration");
    c.tp = json_integer(j.at("grid").at(0), "grid[0]", 1, 1 << 20);
    c.hp = json_integer(j.at("grid").at(1), "grid[1]", 1, 1 << 20);
    c.wp = json_integer(j.at("grid").at(2), "grid[2]", 1, 1 << 20);
    c.block = json_integer(j.at("block"), "block", 1, 1024);
    c.steps = json_integer(j.at("steps"), "steps", 1, 100000);
    c.layers = json_integer(j.at("layers"), "layers", 1, 4096);
    c.heads = json_integer(j.at("heads"), "heads", 1, 4096);
    c.sink = j.at("sink").get<bool>();
    try {
      c.tile = parse_tile(j.at("tile").get<std::string>());
      for (const auto& w : j.at("windows")) c.windows.push_back(parse_tile(w.get<std::string>()));
    } catch (const std::invalid_argument& e) {
      throw std::runtime_error(e.what());
    }
    if (c.windows.empty()) throw std::runtime_error("no candidate windows");
    const size_t cells = size_t(c.steps) * size_t(c.layers) * size_t(c.heads);
    if (cells > (size_t(1) << 26)) throw std::runtime_error(std::to_string(cells) + " (step, layer, head) cells is too many");
    const nlohmann::json& ch = j.at("choice");
    if (ch.size() != cells) throw std::runtime_error("choice has " + std::to_string(ch.size()) + " entries, expected " + std::to_string(cells));
    for (const auto& v : ch) c.choice.push_back(json_integer(v, "choice", 0, int64_t(c.windows.size()) - 1));
    const nlohmann::json& er = j.at("error");
    if (er.size() != cells * c.windows.size())
      throw std::runtime_error("error has " + std::to_string(er.size()) + " entries, expected " + std::to_string(cells * c.windows.size()));
    for (const auto& v : er) c.error.push_back(v.get<double>());
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error("calibration file '" + path + "': " + e.what());
  } catch (const std::runtime_error& e) {
    throw std::runtime_error("calibration file '" + path + "': " + e.what());
  }
  return c;
}

// ---------------------------------------------------------------- calibrator

StaCalibrator::StaCalibrator(TileShape tile, bool sink, int block, std::vector<TileShape> windows, int volume, KernelOptions opt)
    : tile_(tile), sink_(sink), block_(block), volume_(volume), windows_(std::move(windows)), kernel_(opt) {
  if (windows_.empty() && volume_ < 1) throw std::invalid_argument("sta calibration: give candidate windows or a tile volume of at least 1");
}

std::string StaCalibrator::spec() const {
  std::ostringstream s;
  s << "sta_calibrate:tile=" << tile_.str() << ",sink=" << (sink_ ? 1 : 0) << ",block=" << block_;
  if (volume_ > 0) s << ",volume=" << volume_;
  return s.str();
}

TokenLayout StaCalibrator::layout(int tp, int hp, int wp) const { return tile_layout(tp, hp, wp, tile_); }

void StaCalibrator::start(const TokenLayout& l, const AttentionInputs& in, const AttentionContext& ctx) {
  tp_ = l.frames(), hp_ = l.height(), wp_ = l.width(), heads_ = in.heads;
  layers_ = std::max(1, ctx.num_layers), steps_ = std::max(1, ctx.num_steps);
  const WindowMask grid(l, WindowRule{tile_, TileShape{1, 1, 1}, sink_});
  if (volume_ > 0) {
    windows_ = sta_windows(volume_, grid.tiles_t(), grid.tiles_h(), grid.tiles_w());
    if (windows_.empty())
      throw std::invalid_argument("sta calibration: no window of " + std::to_string(volume_) + " tiles fits a grid of " +
                                  std::to_string(grid.tiles_t()) + "x" + std::to_string(grid.tiles_h()) + "x" +
                                  std::to_string(grid.tiles_w()) + " tiles");
  }
  const size_t cells = size_t(steps_) * size_t(layers_) * size_t(heads_);
  err_sum_.assign(cells * windows_.size(), 0.0);
  err_count_.assign(cells, 0);
  calls_recorded_ = 0;
}

AttendReport StaCalibrator::attend(const AttentionInputs& in, float* out, const AttentionContext& ctx) {
  if (in.layout == nullptr) throw std::invalid_argument("sta calibration needs the token layout");
  const TokenLayout& l = *in.layout;
  const int64_t n = in.tokens;
  const int dh = in.head_dim, heads = in.batch * in.heads;
  if (dense_.tokens != n) dense_ = BlockMap::dense(n, block_);
  kernel_.run(self_attention(in.q, in.k, in.v, out, heads, n, dh, &dense_));
  const auto t0 = std::chrono::steady_clock::now();
  if (err_count_.empty() || tp_ != l.frames() || hp_ != l.height() || wp_ != l.width() || heads_ != in.heads ||
      layers_ < ctx.num_layers || steps_ != ctx.num_steps)
    start(l, in, ctx);
  if (maps_.size() != windows_.size() || maps_order_ != l.order()) {
    maps_.clear();
    for (const auto& w : windows_) maps_.push_back(compile_mask(WindowMask(l, WindowRule{tile_, w, sink_}), n, block_));
    maps_order_ = l.order();
  }
  if (ctx.layer >= layers_ || ctx.step >= steps_) return {};
  const size_t per_head = size_t(n) * size_t(dh), cell0 = (size_t(ctx.step) * layers_ + size_t(ctx.layer)) * heads_;
  scratch_.resize(per_head * size_t(heads));
  std::vector<double> ref(static_cast<size_t>(heads), 0.0);
#pragma omp parallel for schedule(static)
  for (int h = 0; h < heads; ++h)
    for (size_t i = 0; i < per_head; ++i) ref[size_t(h)] += double(out[size_t(h) * per_head + i]) * out[size_t(h) * per_head + i];
  std::vector<double> rel(static_cast<size_t>(heads));
  for (size_t w = 0; w < windows_.size(); ++w) {
    kernel_.run(self_attention(in.q, in.k, in.v, scratch_.data(), heads, n, dh, &maps_[w]));
#pragma omp parallel for schedule(static)
    for (int h = 0; h < heads; ++h) {
      double e = 0;
      const float* a = scratch_.data() + size_t(h) * per_head;
      const float* b = out + size_t(h) * per_head;
      for (size_t i = 0; i < per_head; ++i) e += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
      rel[size_t(h)] = ref[size_t(h)] > 0 ? std::sqrt(e / ref[size_t(h)]) : std::sqrt(e);
    }
    // Heads h and h + NH (cond, uncond) share a cell: summed after the parallel loop.
    for (int h = 0; h < heads; ++h) err_sum_[(cell0 + size_t(h % heads_)) * windows_.size() + w] += rel[size_t(h)];
  }
  for (int h = 0; h < heads; ++h) ++err_count_[cell0 + size_t(h % heads_)];
  ++calls_recorded_;
  search_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return {};
}

StaCalibration StaCalibrator::result() const {
  if (err_count_.empty() || calls_recorded_ == 0) throw std::runtime_error("sta calibration recorded no attention calls");
  StaCalibration c;
  c.tp = tp_, c.hp = hp_, c.wp = wp_, c.block = block_, c.steps = steps_, c.layers = layers_, c.heads = heads_;
  c.tile = tile_, c.sink = sink_, c.windows = windows_;
  c.error.resize(err_sum_.size());
  for (size_t cell = 0; cell < err_count_.size(); ++cell)
    for (size_t w = 0; w < windows_.size(); ++w) {
      const size_t i = cell * windows_.size() + w;
      // A cell no call reached (a layer or step the run skipped) ranks every window equal.
      c.error[i] = err_count_[cell] ? err_sum_[i] / err_count_[cell] : 0.0;
    }
  c.choice = sta_select(c.error, int(windows_.size()));
  return c;
}

std::string StaCalibrator::report_json() const {
  nlohmann::json j;
  j["method"] = "sta_calibrate";
  j["spec"] = spec();
  j["calls_recorded"] = calls_recorded_;
  j["search_seconds"] = search_seconds_;
  return j.dump();
}

}  // namespace ditgen::attn
