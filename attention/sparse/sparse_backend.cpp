#include "attention/sparse/sparse_backend.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <sstream>
#include <stdexcept>

namespace ditgen::attn {

// ---------------------------------------------------------------- keys

const std::string* KeySet::given(const std::string& key) {
  for (const auto& kv : resolved_)
    if (kv.first == key) throw std::logic_error("key '" + key + "' declared twice for method '" + method_ + "'");
  auto it = spec_.params.find(key);
  return it == spec_.params.end() ? nullptr : &it->second;
}

void KeySet::bad(const std::string& key, const std::string& value, const std::string& why) const {
  throw std::invalid_argument("attention method '" + method_ + "': " + key + "=" + value + " " + why);
}

std::string KeySet::str(const std::string& key, const std::string& def) {
  const std::string* g = given(key);
  resolved_.emplace_back(key, g ? *g : def);
  return resolved_.back().second;
}

std::string KeySet::choice(const std::string& key, const std::string& def, const std::vector<std::string>& choices) {
  const std::string* g = given(key);
  const std::string v = g ? *g : def;
  if (std::find(choices.begin(), choices.end(), v) == choices.end()) {
    std::string list;
    for (const auto& c : choices) list += (list.empty() ? "" : ", ") + c;
    bad(key, v, "is not one of: " + list);
  }
  resolved_.emplace_back(key, v);
  return v;
}

int KeySet::integer(const std::string& key, int def, int lo, int hi) {
  const std::string* g = given(key);
  int v = def;
  if (g) {
    size_t used = 0;
    try {
      v = std::stoi(*g, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != g->size() || v < lo || v > hi)
      bad(key, *g, "is not an integer in " + std::to_string(lo) + ".." + std::to_string(hi));
  }
  resolved_.emplace_back(key, std::to_string(v));
  return v;
}

double KeySet::real(const std::string& key, double def, double lo, double hi) {
  const std::string* g = given(key);
  double v = def;
  if (g) {
    size_t used = 0;
    try {
      v = std::stod(*g, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != g->size() || !(v >= lo && v <= hi)) {
      std::ostringstream r;
      r << "is not a number in [" << lo << ", " << hi << "]";
      bad(key, *g, r.str());
    }
  }
  std::ostringstream o;
  o << v;
  resolved_.emplace_back(key, o.str());
  return v;
}

bool KeySet::flag(const std::string& key, bool def) {
  const std::string* g = given(key);
  bool v = def;
  if (g) {
    if (*g == "1" || *g == "true" || *g == "on") v = true;
    else if (*g == "0" || *g == "false" || *g == "off") v = false;
    else bad(key, *g, "is not 0 or 1");
  }
  resolved_.emplace_back(key, v ? "1" : "0");
  return v;
}

void KeySet::finish() const {
  std::string unknown, known;
  for (const auto& kv : resolved_) known += (known.empty() ? "" : ", ") + kv.first;
  for (const auto& [k, v] : spec_.params) {
    bool found = false;
    for (const auto& kv : resolved_) found = found || kv.first == k;
    if (!found) unknown += (unknown.empty() ? "'" : ", '") + k + "'";
  }
  if (!unknown.empty())
    throw std::invalid_argument("attention method '" + method_ + "' has no key " + unknown + " (keys: " + known + ")");
}

std::string KeySet::spec_string() const {
  std::string s = method_;
  for (size_t i = 0; i < resolved_.size(); ++i) s += (i == 0 ? ":" : ",") + resolved_[i].first + "=" + resolved_[i].second;
  return s;
}

Isa read_isa(KeySet& keys, Isa run_isa) {
  const Isa isa = parse_isa(keys.choice("isa", isa_name(run_isa), {"auto", "portable", "avx2", "avx512", "avx512bf16"}));
  if (!isa_supported(isa))
    throw std::invalid_argument("attention method '" + keys.method() + "': isa=" + isa_name(isa) +
                                " is not supported by this CPU or build (auto picks the best float32 path)");
  return isa;
}

CommonOptions read_common(KeySet& keys, const CommonDefaults& d, Isa run_isa) {
  CommonOptions c;
  c.block = keys.integer("block", d.block, 1, 1024);
  c.layout = keys.choice("layout", d.layout, layout_names());
  const std::string tile = keys.str("tile", d.tile);
  try {
    c.tile = parse_tile(tile);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument("attention method '" + keys.method() + "': tile: " + e.what());
  }
  const std::string steps = keys.str("dense_steps", d.dense_steps);
  const int layers = keys.integer("dense_layers", d.dense_layers, 0, 1 << 20);
  c.schedule = DenseSchedule::parse(steps, layers);
  c.schedule.auto_tol = keys.real("auto_tol", 0.05, 0.0, 1e9);
  c.schedule.auto_rows = keys.integer("auto_rows", 64, 1, 1 << 20);
  c.schedule.refresh = keys.integer("refresh", 0, 0, 1 << 20);
  if (c.schedule.refresh > 0 && c.schedule.kind == DenseSchedule::Kind::Auto)
    throw std::invalid_argument("attention method '" + keys.method() + "': refresh = " +
                                std::to_string(c.schedule.refresh) +
                                " needs a fixed dense_steps (a count or a fraction), not dense_steps=auto");
  c.isa = read_isa(keys, run_isa);
  return c;
}

// ---------------------------------------------------------------- sampled rows

void rows_attention(const float* q, const float* k, const float* v, int64_t tokens, int head_dim,
                    const BlockMap* map, int map_index, const std::vector<int64_t>& rows, float* out) {
  const double scale = 1.0 / std::sqrt(double(head_dim));
  std::vector<char> allowed(static_cast<size_t>(tokens));
  std::vector<double> s(static_cast<size_t>(tokens)), acc(static_cast<size_t>(head_dim));
  for (size_t r = 0; r < rows.size(); ++r) {
    const int64_t i = rows[r];
    if (map == nullptr) {
      std::fill(allowed.begin(), allowed.end(), 1);
    } else {
      map->row_keys(map_index, i, allowed);
    }
    const float* qi = q + i * head_dim;
    double mx = -std::numeric_limits<double>::infinity();
    for (int64_t j = 0; j < tokens; ++j) {
      if (!allowed[size_t(j)]) continue;
      const float* kj = k + j * head_dim;
      double d = 0;
      for (int c = 0; c < head_dim; ++c) d += double(qi[c]) * double(kj[c]);
      s[size_t(j)] = d * scale;
      mx = std::max(mx, s[size_t(j)]);
    }
    std::fill(acc.begin(), acc.end(), 0.0);
    double sum = 0;
    for (int64_t j = 0; j < tokens; ++j) {
      if (!allowed[size_t(j)]) continue;
      const double p = std::exp(s[size_t(j)] - mx);
      sum += p;
      const float* vj = v + j * head_dim;
      for (int c = 0; c < head_dim; ++c) acc[size_t(c)] += p * double(vj[c]);
    }
    for (int c = 0; c < head_dim; ++c) out[r * size_t(head_dim) + size_t(c)] = float(acc[size_t(c)] / sum);
  }
}

std::vector<int64_t> sample_rows(int64_t tokens, int count, uint64_t seed, int64_t limit) {
  const int64_t n = limit > 0 ? std::min(tokens, limit) : tokens;
  std::vector<int64_t> rows;
  if (count >= n) {
    for (int64_t i = 0; i < n; ++i) rows.push_back(i);
    return rows;
  }
  uint64_t z = seed;
  auto next = [&z]() {
    z += 0x9E3779B97F4A7C15ull;
    uint64_t x = z;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
  };
  std::vector<char> taken(static_cast<size_t>(n), 0);
  while (int(rows.size()) < count) {
    const int64_t i = int64_t(next() % uint64_t(n));
    if (!taken[size_t(i)]) {
      taken[size_t(i)] = 1;
      rows.push_back(i);
    }
  }
  std::sort(rows.begin(), rows.end());
  return rows;
}

// ---------------------------------------------------------------- backend

SparseBackend::SparseBackend(std::string method, const CommonOptions& common, KernelOptions opt)
    : method_(std::move(method)), common_(common), opt_(opt) {
  opt_.isa = common.isa;
}

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

void SparseBackend::set_last_pass(const BlockMap* map, std::vector<std::vector<int32_t>> kernel_pos) {
  last_map_ = map;
  last_pos_ = std::move(kernel_pos);
}

bool SparseBackend::last_allows(int head, int64_t q, int64_t k) const {
  if (last_map_ == nullptr) return true;
  if (!last_pos_.empty()) {
    const std::vector<int32_t>& pos = last_pos_[size_t(head) % last_pos_.size()];
    if (!pos.empty()) q = pos[size_t(q)], k = pos[size_t(k)];
  }
  return last_map_->allows(last_map_->map_of_head(head), q, k);
}

double SparseBackend::sparse_attend(const AttentionInputs& in, float* out, const AttentionContext&) {
  const BlockMap& m = static_map(*in.layout);
  set_last_pass(&m);
  block_sparse_attention(in.q, in.k, in.v, out, in.batch * in.heads, in.tokens, in.head_dim, m, opt_);
  return m.pair_density();
}

void SparseBackend::dense_pass(const AttentionInputs& in, float* out) {
  if (dense_map_.tokens != in.tokens || dense_map_.block != common_.block)
    dense_map_ = BlockMap::dense(in.tokens, common_.block);
  block_sparse_attention(in.q, in.k, in.v, out, in.batch * in.heads, in.tokens, in.head_dim, dense_map_, opt_);
}

double SparseBackend::auto_estimate(const AttentionInputs& in, const float* dense_out, const AttentionContext& ctx) {
  const int heads = in.batch * in.heads;
  const int64_t n = in.tokens;
  const int dh = in.head_dim;
  const std::vector<int64_t> rows =
      sample_rows(n, common_.schedule.auto_rows, 0x5eed0000ull + uint64_t(ctx.step) * 1009u + uint64_t(ctx.layer));
  double err = 0, ref = 0;
  if (is_static()) {
    const BlockMap& m = static_map(*in.layout);
    std::vector<double> e(static_cast<size_t>(heads)), r(static_cast<size_t>(heads));
#pragma omp parallel for schedule(dynamic, 1)
    for (int h = 0; h < heads; ++h) {
      std::vector<float> o(rows.size() * size_t(dh));
      const int64_t off = int64_t(h) * n * dh;
      rows_attention(in.q + off, in.k + off, in.v + off, n, dh, &m, m.map_of_head(h), rows, o.data());
      for (size_t ri = 0; ri < rows.size(); ++ri)
        for (int c = 0; c < dh; ++c) {
          const double d = dense_out[off + rows[ri] * dh + c], s = o[ri * size_t(dh) + size_t(c)];
          e[size_t(h)] += (s - d) * (s - d);
          r[size_t(h)] += d * d;
        }
    }
    for (int h = 0; h < heads; ++h) err += e[size_t(h)], ref += r[size_t(h)];
  } else {
    // Dynamic methods: one full sparse pass, compared on the sampled rows.
    scratch_.resize(size_t(heads) * size_t(n) * size_t(dh));
    sparse_attend(in, scratch_.data(), ctx);
    for (int h = 0; h < heads; ++h) {
      const int64_t off = int64_t(h) * n * dh;
      for (int64_t i : rows)
        for (int c = 0; c < dh; ++c) {
          const double d = dense_out[off + i * dh + c], s = scratch_[size_t(off + i * dh + c)];
          err += (s - d) * (s - d);
          ref += d * d;
        }
    }
  }
  return ref > 0 ? std::sqrt(err / ref) : std::sqrt(err);
}

void SparseBackend::attend(const AttentionInputs& in, float* out, const AttentionContext& ctx) {
  const auto t0 = std::chrono::steady_clock::now();
  if (in.layout == nullptr) throw std::invalid_argument("attention method '" + method_ + "' needs the token layout");
  if (in.layout->tokens() != in.tokens)
    throw std::invalid_argument("attention method '" + method_ + "': layout has " + std::to_string(in.layout->tokens()) +
                                " tokens, inputs have " + std::to_string(in.tokens));
  const DenseSchedule& s = common_.schedule;
  const int num_layers = std::max(ctx.num_layers, ctx.layer + 1);
  if (int(layer_density_.size()) < num_layers) layer_density_.resize(size_t(num_layers), 1.0);
  bool dense = s.layer_dense(ctx.layer);
  bool estimate = false;
  if (s.kind == DenseSchedule::Kind::Auto) {
    auto_.begin_call(ctx.step, num_layers);
    if (!dense && !auto_.switched(ctx.layer)) dense = estimate = true;
  } else if (!dense) {
    dense = ctx.step < s.fixed_dense_steps(ctx.num_steps);
  }
  const bool anchor = !s.layer_dense(ctx.layer) && s.anchor_step(ctx.step, ctx.num_steps);
  if (s.refresh > 0) residual_.begin_call(ctx.step, num_layers);
  double density = 1.0;
  if (anchor) {
    dense_pass(in, out);
    set_last_pass(nullptr);
    // A static map of full blocks only, all listed (radial at one or two frames), leaves nothing
    // to correct: a structural check, cheaper than counting the attended pairs every call.
    const bool keeps_all = is_static() && [&] {
      const BlockMap& m = static_map(*in.layout);
      return m.partial_cols.empty() && m.pair_density() >= 1.0;
    }();
    if (!keeps_all) {
      std::vector<float>& r = residual_.store(ctx.layer, in.elements());
      density += sparse_attend(in, r.data(), ctx);
      set_last_pass(nullptr);
      ResidualCache::finish_anchor(out, r);
    }
    ++dense_calls_;
  } else if (dense) {
    dense_pass(in, out);
    set_last_pass(nullptr);
    if (estimate) {
      const double err = auto_estimate(in, out, ctx);
      auto_.record(ctx.layer, ctx.step, err, err <= s.auto_tol);
    }
    ++dense_calls_;
  } else {
    density = sparse_attend(in, out, ctx);
    if (const std::vector<float>* r = residual_.find(ctx.layer, in.elements())) ResidualCache::add(out, *r);
  }
  last_density_ = density;
  layer_density_[size_t(ctx.layer)] = density;
  ++calls_;
  sparse_pairs_ += density;
  all_pairs_ += 1.0;
  attend_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

int64_t SparseBackend::state_bytes(int64_t tokens, int batch, int heads, int head_dim, int num_layers) const {
  const DenseSchedule& s = common_.schedule;
  const int64_t kernel = kernel_state_bytes(opt_, common_.block, batch * heads, tokens, head_dim);
  if (s.refresh <= 0) return kernel;
  const int64_t layers = std::max(0, num_layers - s.dense_layers);
  return kernel + layers * int64_t(batch) * heads * tokens * head_dim * int64_t(sizeof(float));
}

std::string SparseBackend::report_json() const {
  nlohmann::json j;
  j["method"] = method_;
  j["spec"] = spec_;
  j["calls"] = calls_;
  j["dense_calls"] = dense_calls_;
  j["mean_pair_density"] = all_pairs_ > 0 ? sparse_pairs_ / all_pairs_ : 1.0;
  j["last_density"] = last_density_;
  j["layer_density"] = layer_density_;
  j["attention_seconds"] = attend_seconds_;
  const DenseSchedule& s = common_.schedule;
  if (s.kind == DenseSchedule::Kind::Auto) {
    nlohmann::json a;
    a["tolerance"] = s.auto_tol;
    a["rows"] = s.auto_rows;
    a["switch_step"] = auto_.switch_steps();  // per layer; -1: still dense
    a["last_error"] = auto_.last_errors();
    j["auto"] = a;
  }
  report(j);
  return j.dump();
}

}  // namespace ditgen::attn
