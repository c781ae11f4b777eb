#include "attention/sparse/sparse_backend.h"

#include <algorithm>
#include <chrono>
#include <stdexcept>

namespace ditgen::attn {

SparseBackend::SparseBackend(std::string method, const CommonOptions& common, KernelOptions opt)
    : method_(std::move(method)), common_(common), kernel_([&] {
        KernelOptions k = opt;
        k.isa = common.isa;
        return k;
      }()) {}

TokenLayout SparseBackend::layout(int tp, int hp, int wp) const {
  return make_layout(common_.layout, tp, hp, wp, common_.tile);
}

BlockMap SparseBackend::build_map(const TokenLayout&) {
  throw std::logic_error("attention method '" + method_ + "' has no static map");
}

const BlockMap& SparseBackend::static_map(const TokenLayout& layout) {
  return cache_.get(layout, common_.block, "", [&] { return build_map(layout); });
}

std::vector<std::pair<std::string, BlockMap>> SparseBackend::preview(const TokenLayout& layout) {
  return {{method_, static_map(layout)}};
}

AttendReport SparseBackend::sparse_attend(const AttentionInputs& in, float* out, const AttentionContext&) {
  const BlockMap& m = static_map(*in.layout);
  kernel_.run(self_attention(in.q, in.k, in.v, out, in.batch * in.heads, in.tokens, in.head_dim, &m));
  AttendReport r;
  r.density = m.pair_density();
  r.map = &m;
  return r;
}

void SparseBackend::dense_pass(const AttentionInputs& in, float* out) {
  if (dense_map_.tokens != in.tokens || dense_map_.block != common_.block)
    dense_map_ = BlockMap::dense(in.tokens, common_.block);
  kernel_.run(self_attention(in.q, in.k, in.v, out, in.batch * in.heads, in.tokens, in.head_dim, &dense_map_));
}

AttendReport SparseBackend::attend(const AttentionInputs& in, float* out, const AttentionContext& ctx) {
  const auto t0 = std::chrono::steady_clock::now();
  if (in.layout == nullptr) throw std::invalid_argument("attention method '" + method_ + "' needs the token layout");
  if (in.layout->tokens() != in.tokens)
    throw std::invalid_argument("attention method '" + method_ + "': layout has " + std::to_string(in.layout->tokens()) +
                                " tokens, inputs have " + std::to_string(in.tokens));
  const DenseSchedule& s = common_.schedule;
  const int num_layers = std::max(ctx.num_layers, ctx.layer + 1);
  // A new run starts when the step goes back or the model has another depth: every per-run
  // state (auto switch, residuals, a method's own through new_run()) starts afresh.
  new_run_ = ctx.step < last_step_ || num_layers != run_layers_;
  last_step_ = ctx.step, run_layers_ = num_layers;
  if (new_run_) auto_.reset(num_layers), residual_.reset(num_layers);
  bool dense = s.layer_dense(ctx.layer) || plan_costs_dense(*in.layout, ctx.num_steps);
  bool estimate = false;
  if (s.kind == DenseSchedule::Kind::Auto) {
    if (!dense && !auto_.switched(ctx.layer)) dense = estimate = true;
  } else if (!dense) {
    dense = ctx.step < s.fixed_dense_steps(ctx.num_steps);
  }
  const bool anchor = !(s.layer_dense(ctx.layer) || plan_.dense) && s.anchor_step(ctx.step, ctx.num_steps);
  AttendReport report;  // dense unless a sparse pass replaces it
  if (anchor) {
    // A static map of full blocks only, all listed (radial at one or two frames), leaves nothing
    // to correct: a structural check, cheaper than counting the attended pairs every call.
    const bool keeps_all = is_static() && [&] {
      const BlockMap& m = static_map(*in.layout);
      return m.partial_cols.empty() && m.pair_density() >= 1.0;
    }();
    if (keeps_all) {
      dense_pass(in, out);
    } else if (is_static()) {
      report.density = one_walk_anchor(in, out, residual_.store(ctx.layer, in.elements()));
    } else {
      dense_pass(in, out);
      std::vector<float>& r = residual_.store(ctx.layer, in.elements());
      report.density += sparse_attend(in, r.data(), ctx).density;
      ResidualCache::finish_anchor(out, r);
    }
  } else if (dense) {
    dense_pass(in, out);
    if (estimate) {
      const double err = auto_estimate(in, out, ctx);
      auto_.record(ctx.layer, ctx.step, err, err <= s.auto_tol);
    }
  } else {
    report = sparse_attend(in, out, ctx);
    if (const std::vector<float>* r = residual_.find(ctx.layer, in.elements())) ResidualCache::add(out, *r);
  }
  accounting_.record(ctx.layer, num_layers, report.density, anchor || dense,
                     std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  return report;
}

const BlockMap& SparseBackend::complement_map(const TokenLayout& layout) {
  // The cache may drop its oldest entry when it adds one: the static map is fetched inside the
  // build, and callers fetch it again after this returns.
  return cache_.get(layout, common_.block, "complement", [&] { return complement(static_map(layout)); });
}

double SparseBackend::one_walk_anchor(const AttentionInputs& in, float* out, std::vector<float>& r) {
  const BlockMap& rest = complement_map(*in.layout);
  const BlockMap& m = static_map(*in.layout);
  const int heads = in.batch * in.heads;
  const int64_t rows = int64_t(heads) * in.tokens;
  lse_.resize(2 * size_t(rows));
  float* lse_sparse = lse_.data();
  float* lse_rest = lse_.data() + rows;
  AttentionCall sparse = self_attention(in.q, in.k, in.v, r.data(), heads, in.tokens, in.head_dim, &m);
  sparse.lse = lse_sparse;
  kernel_.run(sparse);
  AttentionCall others = self_attention(in.q, in.k, in.v, out, heads, in.tokens, in.head_dim, &rest);
  others.lse = lse_rest;
  others.allow_empty_rows = true;
  kernel_.run(others);
  merge_partials(out, lse_rest, r.data(), lse_sparse, rows, in.head_dim);  // out: the dense output
  ResidualCache::finish_anchor(out, r);
  return m.pair_density() + rest.pair_density();
}

bool SparseBackend::plan_costs_dense(const TokenLayout& layout, int num_steps) {
  const DenseSchedule& s = common_.schedule;
  if (!common_.fallback_dense || !is_static() || s.kind == DenseSchedule::Kind::Auto) return false;
  const std::array<int, 3> grid{layout.frames(), layout.height(), layout.width()};
  if (plan_.grid == grid && plan_.num_steps == num_steps) return plan_.dense;
  const double d = static_map(layout).pair_density();  // partial blocks count whole: the kernel pays for them
  double cost = 0;
  for (int step = 0; step < num_steps; ++step) {
    if (s.anchor_step(step, num_steps)) {
      // One walk: the map's blocks and the rest; a map that keeps every pair runs dense alone.
      // The complement is built here only when the run has an anchor.
      const BlockMap& m = static_map(layout);
      const bool keeps_all = m.partial_cols.empty() && d >= 1.0;
      cost += keeps_all ? 1.0 : d + complement_map(layout).pair_density();
    } else {
      cost += step < s.fixed_dense_steps(num_steps) ? 1.0 : d;
    }
  }
  plan_ = Plan{grid, num_steps, cost, cost >= num_steps};
  return plan_.dense;
}

int64_t SparseBackend::state_bytes(int64_t tokens, int batch, int heads, int head_dim, int num_layers) const {
  const DenseSchedule& s = common_.schedule;
  const int64_t kernel = kernel_state_bytes(kernel_.options(), common_.block, batch * heads, tokens, head_dim);
  if (s.refresh <= 0) return kernel;
  const int64_t layers = std::max(0, num_layers - s.dense_layers);
  const int64_t rows = int64_t(batch) * heads * tokens;
  // the residual of every sparse layer, and the two log-sum-exp rows of a one-walk anchor
  return kernel + layers * rows * head_dim * int64_t(sizeof(float)) + 2 * rows * int64_t(sizeof(float));
}

std::string SparseBackend::report_json() const {
  nlohmann::json j;
  j["method"] = method_;
  j["spec"] = spec_;
  accounting_.to_json(j);
  const DenseSchedule& s = common_.schedule;
  if (s.kind == DenseSchedule::Kind::Auto) {
    nlohmann::json a;
    a["tolerance"] = s.auto_tol;
    a["rows"] = s.auto_rows;
    a["switch_step"] = auto_.switch_steps();  // per layer; -1: still dense
    a["last_error"] = auto_.last_errors();
    j["auto"] = a;
  }
  if (plan_.num_steps > 0) {
    j["plan_cost"] = plan_.cost / plan_.num_steps;  // blocks computed, as a share of dense's
    j["plan_ran_dense"] = plan_.dense;
  }
  report(j);
  return j.dump();
}

}  // namespace ditgen::attn
