#include "attention/methods/paro.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <numeric>
#include <sstream>
#include <stdexcept>

#include "attention/mask/mask.h"
#include "attention/methods/calib_file.h"
#include "attention/methods/methods.h"
#include "attention/mask/reorder.h"
#include "attention/sparse/probe.h"
#include "attention/sparse/sparse_backend.h"

namespace ditgen::attn {

// ---------------------------------------------------------------- calibration file

namespace {

std::string row_hex(const std::vector<char>& row) {
  static const char* digits = "0123456789abcdef";
  std::string s((row.size() + 3) / 4, '0');
  for (size_t b = 0; b < row.size(); ++b)
    if (row[b]) s[b / 4] = digits[(std::strchr(digits, s[b / 4]) - digits) | (1 << (b % 4))];
  return s;
}

std::vector<char> hex_row(const std::string& s, int nb) {
  if (s.size() != size_t((nb + 3) / 4)) throw std::runtime_error("row '" + s + "' has the wrong length for " + std::to_string(nb) + " blocks");
  std::vector<char> row(static_cast<size_t>(nb), 0);
  for (int b = 0; b < nb; ++b) {
    const char c = s[size_t(b / 4)];
    const int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (v < 0) throw std::runtime_error("row '" + s + "' is not hexadecimal");
    row[size_t(b)] = (v >> (b % 4)) & 1;
  }
  return row;
}

}  // namespace

const ParoHeadPlan* ParoCalibration::find(int layer, int head) const {
  for (const auto& p : plans)
    if (p.layer == layer && p.head == head) return &p;
  return nullptr;
}

void ParoCalibration::write(const std::string& path) const {
  nlohmann::json j;
  j["format"] = "ditgen-paro-calibration";
  j["version"] = 1;
  j["grid"] = {tp, hp, wp};
  j["block"] = block;
  j["heads"] = heads;
  j["layers"] = layers;
  j["mass"] = mass;
  j["plans"] = nlohmann::json::array();
  for (const auto& p : plans) {
    nlohmann::json rows = nlohmann::json::array();
    for (const auto& r : p.keep) rows.push_back(row_hex(r));
    j["plans"].push_back({{"layer", p.layer}, {"head", p.head}, {"order", p.order}, {"density", p.density}, {"rows", rows}});
  }
  write_calibration_json(path, j);
}

ParoCalibration ParoCalibration::read(const std::string& path) {
  const nlohmann::json j = read_calibration_json(path);
  ParoCalibration c;
  try {
    if (j.at("format") != "ditgen-paro-calibration" || j.at("version") != 1)
      throw std::runtime_error("not a version 1 ditgen PARO calibration");
    c.tp = json_integer(j.at("grid").at(0), "grid[0]", 1, 1 << 20), c.hp = json_integer(j.at("grid").at(1), "grid[1]", 1, 1 << 20);
    c.wp = json_integer(j.at("grid").at(2), "grid[2]", 1, 1 << 20);
    c.block = json_integer(j.at("block"), "block", 1, 1024), c.heads = json_integer(j.at("heads"), "heads", 1, 4096);
    c.layers = json_integer(j.at("layers"), "layers", 0, 4096), c.mass = j.at("mass").get<double>();
    const int64_t n = int64_t(c.tp) * c.hp * c.wp;
    if (n > (int64_t(1) << 31) - 1) throw std::runtime_error("grid of " + std::to_string(n) + " tokens is too large");
    const int nb = int((n + c.block - 1) / c.block);
    for (const auto& p : j.at("plans")) {
      ParoHeadPlan h;
      h.layer = json_integer(p.at("layer"), "plan layer", 0, c.layers - 1), h.head = json_integer(p.at("head"), "plan head", 0, c.heads - 1);
      h.order = p.at("order").get<std::string>(), h.density = p.at("density").get<double>();
      if (std::find(axis_orders().begin(), axis_orders().end(), h.order) == axis_orders().end())
        throw std::runtime_error("unknown axis order '" + h.order + "'");
      if (p.at("rows").size() != size_t(nb)) throw std::runtime_error("plan has " + std::to_string(p.at("rows").size()) + " rows, expected " + std::to_string(nb));
      for (const auto& r : p.at("rows")) h.keep.push_back(hex_row(r.get<std::string>(), nb));
      c.plans.push_back(std::move(h));
    }
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error("calibration file '" + path + "': " + e.what());
  } catch (const std::runtime_error& e) {
    throw std::runtime_error("calibration file '" + path + "': " + e.what());
  }
  return c;
}

std::vector<std::vector<char>> paro_select(const std::vector<double>& m, int nb, double mass) {
  std::vector<std::vector<char>> keep(size_t(nb), std::vector<char>(size_t(nb), 0));
  std::vector<int> idx(static_cast<size_t>(nb));
  for (int a = 0; a < nb; ++a) {
    const double* row = &m[size_t(a) * nb];
    double total = 0;
    for (int b = 0; b < nb; ++b) total += row[b];
    std::iota(idx.begin(), idx.end(), 0);
    std::sort(idx.begin(), idx.end(), [&](int x, int y) { return row[x] > row[y] || (row[x] == row[y] && x < y); });
    double acc = 0;
    for (int b : idx) {
      if (total > 0 && acc >= mass * total) break;
      keep[size_t(a)][size_t(b)] = 1;
      acc += row[b];
      if (total <= 0) break;
    }
    keep[size_t(a)][size_t(a)] = 1;
  }
  return keep;
}

// ---------------------------------------------------------------- calibrator

ParoCalibrator::ParoCalibrator(int block, double mass, double sample, int every, KernelOptions opt)
    : block_(block), every_(std::max(1, every)), mass_(mass), sample_(sample), kernel_(opt) {}

std::string ParoCalibrator::spec() const {
  std::ostringstream s;
  s << "paro_calibrate:block=" << block_ << ",mass=" << mass_ << ",sample=" << sample_ << ",every=" << every_;
  return s.str();
}

AttendReport ParoCalibrator::attend(const AttentionInputs& in, float* out, const AttentionContext& ctx) {
  if (in.layout == nullptr) throw std::invalid_argument("paro calibration needs the token layout");
  if (dense_.tokens != in.tokens) dense_ = BlockMap::dense(in.tokens, block_);
  kernel_.run(self_attention(in.q, in.k, in.v, out, in.batch * in.heads, in.tokens, in.head_dim, &dense_));
  if (ctx.step % every_ != 0) return {};
  const auto t0 = std::chrono::steady_clock::now();
  const TokenLayout& l = *in.layout;
  const int64_t n = in.tokens;
  const int dh = in.head_dim;
  if (stats_.empty() || tp_ != l.frames() || hp_ != l.height() || wp_ != l.width() || heads_ != in.heads ||
      layers_ < ctx.num_layers) {
    tp_ = l.frames(), hp_ = l.height(), wp_ = l.width(), heads_ = in.heads, layers_ = std::max(1, ctx.num_layers);
    nb_ = int((n + block_ - 1) / block_);
    stats_.assign(size_t(layers_) * heads_ * 6, std::vector<double>(size_t(nb_) * nb_, 0.0));
    counts_.assign(size_t(layers_) * heads_ * 6, std::vector<double>(static_cast<size_t>(nb_), 0.0));
    calls_recorded_ = 0;
  }
  if (ctx.layer >= layers_) return {};
  // Block of each engine position under each order.
  std::vector<std::vector<int32_t>> blk(6, std::vector<int32_t>(static_cast<size_t>(n)));
  for (int o = 0; o < 6; ++o) {
    const TokenLayout ol = axis_order_layout(tp_, hp_, wp_, axis_orders()[size_t(o)]);
    for (int64_t i = 0; i < n; ++i) blk[size_t(o)][size_t(i)] = ol.inverse()[size_t(l.order()[size_t(i)])] / block_;
  }
  const int count = std::max(1, int(std::lround(sample_ * double(n))));
  const std::vector<int64_t> rows = sample_rows(n, count, 0xca1bull + uint64_t(ctx.step) * 7919u + uint64_t(ctx.layer));
  const double scale = 1.0 / std::sqrt(double(dh));
#pragma omp parallel for schedule(dynamic, 1)
  for (int h = 0; h < heads_; ++h) {  // conditional batch only
    const float* q = in.q + size_t(h) * size_t(n) * dh;
    const float* k = in.k + size_t(h) * size_t(n) * dh;
    std::vector<double> p(static_cast<size_t>(n));
    for (int64_t i : rows) {
      double mx = -1e300;
      for (int64_t j = 0; j < n; ++j) {
        double d = 0;
        for (int c = 0; c < dh; ++c) d += double(q[size_t(i) * dh + c]) * double(k[size_t(j) * dh + c]);
        p[size_t(j)] = d * scale;
        mx = std::max(mx, p[size_t(j)]);
      }
      double sum = 0;
      for (int64_t j = 0; j < n; ++j) sum += (p[size_t(j)] = std::exp(p[size_t(j)] - mx));
      for (int o = 0; o < 6; ++o) {
        const size_t sidx = (size_t(ctx.layer) * heads_ + h) * 6 + o;
        const int a = blk[size_t(o)][size_t(i)];
        double* row = &stats_[sidx][size_t(a) * nb_];
        const int32_t* bo = blk[size_t(o)].data();
        for (int64_t j = 0; j < n; ++j) row[bo[j]] += p[size_t(j)] / sum;
        counts_[sidx][size_t(a)] += 1.0;
      }
    }
  }
  ++calls_recorded_;
  stats_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return {};
}

ParoCalibration ParoCalibrator::result() const {
  if (stats_.empty() || calls_recorded_ == 0) throw std::runtime_error("paro calibration recorded no attention calls");
  ParoCalibration c;
  c.tp = tp_, c.hp = hp_, c.wp = wp_, c.block = block_, c.heads = heads_, c.layers = layers_, c.mass = mass_;
  for (int layer = 0; layer < layers_; ++layer)
    for (int h = 0; h < heads_; ++h) {
      ParoHeadPlan best;
      best.layer = layer, best.head = h, best.density = 2.0;
      for (int o = 0; o < 6; ++o) {
        const size_t sidx = (size_t(layer) * heads_ + h) * 6 + o;
        std::vector<double> m = stats_[sidx];
        for (int a = 0; a < nb_; ++a) {
          const double cnt = counts_[sidx][size_t(a)];
          for (int b = 0; b < nb_; ++b) m[size_t(a) * nb_ + b] = cnt > 0 ? m[size_t(a) * nb_ + b] / cnt : 1.0;  // unsampled: dense
        }
        auto keep = paro_select(m, nb_, mass_);
        double kept = 0;
        for (const auto& r : keep)
          for (char x : r) kept += x;
        const double density = kept / (double(nb_) * nb_);
        if (density < best.density) {
          best.order = axis_orders()[size_t(o)];
          best.keep = std::move(keep);
          best.density = density;
        }
      }
      c.plans.push_back(std::move(best));
    }
  return c;
}

std::string ParoCalibrator::report_json() const {
  nlohmann::json j;
  j["method"] = "paro_calibrate";
  j["spec"] = spec();
  j["calls_recorded"] = calls_recorded_;
  j["stats_seconds"] = stats_seconds_;
  return j.dump();
}

// ---------------------------------------------------------------- backend

namespace {

class ParoBackend : public SparseBackend {
 public:
  ParoBackend(const CommonOptions& c, std::string path, ParoCalibration calib, KernelOptions opt)
      : SparseBackend("paro", c, opt), path_(std::move(path)), calib_(std::move(calib)) {}

  std::vector<std::pair<std::string, BlockMap>> preview(const TokenLayout& layout) override {
    check_grid(layout);
    std::vector<std::pair<std::string, BlockMap>> r;
    for (int layer = 0; layer < calib_.layers; ++layer)
      r.emplace_back("paro_layer" + std::to_string(layer) + "_" + layer_orders(layer), layer_map(layer));
    return r;
  }

 protected:
  bool is_static() const override { return false; }

  AttendReport sparse_attend(const AttentionInputs& in, float* out, const AttentionContext& ctx) override {
    const TokenLayout& l = *in.layout;
    check_grid(l);
    if (in.heads != calib_.heads)
      throw std::invalid_argument("paro: calibration file '" + path_ + "' is for " + std::to_string(calib_.heads) +
                                  " heads, the model has " + std::to_string(in.heads));
    const int64_t n = in.tokens;
    const int dh = in.head_dim, heads = in.batch * in.heads;
    if (ctx.layer >= calib_.layers) {  // not calibrated: dense
      const BlockMap d = BlockMap::dense(n, calib_.block);
      kernel().run(self_attention(in.q, in.k, in.v, out, heads, n, dh, &d));
      return {};
    }
    const BlockMap& m = layer_map(ctx.layer);
    // Gather index per head: engine position of each position in the head's order.
    if (idx_.size() != size_t(calib_.layers) * calib_.heads || idx_order_ != l.order()) {
      idx_order_ = l.order();
      idx_.assign(size_t(calib_.layers) * calib_.heads, {});
      for (const auto& p : calib_.plans) {
        if (p.layer >= calib_.layers || p.head >= calib_.heads) continue;
        const TokenLayout ol = axis_order_layout(l.frames(), l.height(), l.width(), p.order);
        auto& idx = idx_[size_t(p.layer) * calib_.heads + p.head];
        idx.resize(size_t(n));
        for (int64_t i = 0; i < n; ++i) idx[size_t(i)] = l.inverse()[size_t(ol.order()[size_t(i)])];
      }
    }
    const size_t per_head = size_t(n) * size_t(dh);
    for (auto* b : {&xq_, &xk_, &xv_, &xo_}) b->resize(per_head * size_t(heads));
#pragma omp parallel for schedule(static)
    for (int h = 0; h < heads; ++h) {
      const auto& idx = idx_[size_t(ctx.layer) * calib_.heads + h % calib_.heads];
      const size_t o = size_t(h) * per_head;
      for (int64_t i = 0; i < n; ++i) {
        const size_t src = o + size_t(idx.empty() ? i : idx[size_t(i)]) * dh, dst = o + size_t(i) * dh;
        std::memcpy(&xq_[dst], in.q + src, sizeof(float) * size_t(dh));
        std::memcpy(&xk_[dst], in.k + src, sizeof(float) * size_t(dh));
        std::memcpy(&xv_[dst], in.v + src, sizeof(float) * size_t(dh));
      }
    }
    kernel().run(self_attention(xq_.data(), xk_.data(), xv_.data(), xo_.data(), heads, n, dh, &m));
    AttendReport report;
    report.map = &m;
    report.density = m.pair_density();
    report.kernel_pos.resize(static_cast<size_t>(calib_.heads));
    for (int h = 0; h < calib_.heads; ++h) {
      const auto& idx = idx_[size_t(ctx.layer) * calib_.heads + h];
      if (idx.empty()) continue;
      report.kernel_pos[size_t(h)].resize(size_t(n));
      for (int64_t i = 0; i < n; ++i) report.kernel_pos[size_t(h)][size_t(idx[size_t(i)])] = int32_t(i);
    }
#pragma omp parallel for schedule(static)
    for (int h = 0; h < heads; ++h) {
      const auto& idx = idx_[size_t(ctx.layer) * calib_.heads + h % calib_.heads];
      const size_t o = size_t(h) * per_head;
      for (int64_t i = 0; i < n; ++i)
        std::memcpy(out + o + size_t(idx.empty() ? i : idx[size_t(i)]) * dh, &xo_[o + size_t(i) * dh], sizeof(float) * size_t(dh));
    }
    return report;
  }

  void report(nlohmann::json& j) const override {
    j["calibration"] = path_;
    j["mass"] = calib_.mass;
    nlohmann::json orders = nlohmann::json::array();
    for (int layer = 0; layer < calib_.layers; ++layer) orders.push_back(layer_orders(layer));
    j["orders"] = orders;  // per layer, one axis order per head
  }

 private:
  void check_grid(const TokenLayout& l) const {
    if (l.frames() != calib_.tp || l.height() != calib_.hp || l.width() != calib_.wp)
      throw std::invalid_argument("paro: calibration file '" + path_ + "' is for a " + std::to_string(calib_.tp) + "x" +
                                  std::to_string(calib_.hp) + "x" + std::to_string(calib_.wp) + " token grid, this run has " +
                                  std::to_string(l.frames()) + "x" + std::to_string(l.height()) + "x" +
                                  std::to_string(l.width()) + " (run `ditgen calibrate` for this size)");
  }
  std::string layer_orders(int layer) const {
    std::string s;
    for (int h = 0; h < calib_.heads; ++h) {
      const ParoHeadPlan* p = calib_.find(layer, h);
      s += (h ? "," : "") + (p ? p->order : std::string("dense"));
    }
    return s;
  }
  const BlockMap& layer_map(int layer) {
    if (maps_.size() != size_t(calib_.layers)) {
      maps_.clear();
      maps_.resize(size_t(calib_.layers));
    }
    if (!maps_[size_t(layer)]) {
      const int64_t n = int64_t(calib_.tp) * calib_.hp * calib_.wp;
      const int nb = int((n + calib_.block - 1) / calib_.block);
      std::vector<BlockMap> per;
      for (int h = 0; h < calib_.heads; ++h) {
        std::vector<char> grid(size_t(nb) * nb, 1);
        if (const ParoHeadPlan* p = calib_.find(layer, h))
          for (int a = 0; a < nb; ++a)
            for (int b = 0; b < nb; ++b) grid[size_t(a) * nb + b] = p->keep[size_t(a)][size_t(b)];
        per.push_back(grid_to_map(grid, n, calib_.block));
      }
      std::vector<const BlockMap*> ptrs;
      for (const auto& m : per) ptrs.push_back(&m);
      std::vector<int32_t> head_map(static_cast<size_t>(calib_.heads));
      std::iota(head_map.begin(), head_map.end(), 0);
      maps_[size_t(layer)] = std::make_unique<BlockMap>(stack_maps(ptrs, head_map));
    }
    return *maps_[size_t(layer)];
  }

  std::string path_;
  ParoCalibration calib_;
  std::vector<std::unique_ptr<BlockMap>> maps_;
  std::vector<std::vector<int32_t>> idx_;
  std::vector<int32_t> idx_order_;
  std::vector<float> xq_, xk_, xv_, xo_;
};

}  // namespace

std::unique_ptr<AttentionBackend> make_paro(const AttnSpec& spec, const KernelOptions& opt) {
  KeySet keys("paro", spec);
  const std::string path = keys.str("calib", "");
  // PARO needs no dense warm-up [secondary sources]; the block comes from the calibration file.
  const CommonOptions c0 = read_common(keys, CommonDefaults{64, "frame", "4x4x4", "0", 0}, opt.isa);
  keys.finish();
  if (path.empty())
    throw std::invalid_argument("attention method 'paro' needs calib=FILE (write one with `ditgen calibrate`)");
  ParoCalibration calib;
  try {
    calib = ParoCalibration::read(path);
  } catch (const std::runtime_error& e) {
    throw std::invalid_argument(std::string("attention method 'paro': ") + e.what());
  }
  CommonOptions c = c0;
  if (spec.params.count("block") && c.block != calib.block)
    throw std::invalid_argument("attention method 'paro': block=" + std::to_string(c.block) + " but calibration file '" +
                                path + "' uses block " + std::to_string(calib.block));
  c.block = calib.block;
  auto b = std::make_unique<ParoBackend>(c, path, std::move(calib), opt);
  std::string s = keys.spec_string();
  const std::string def = "block=" + std::to_string(c0.block);
  if (c0.block != c.block) s.replace(s.find(def), def.size(), "block=" + std::to_string(c.block));
  b->set_spec_string(s);
  return b;
}

}  // namespace ditgen::attn
