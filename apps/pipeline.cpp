#include "apps/pipeline.h"

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "dit/decoder.h"
#include "io/atomic_file.h"
#include "io/weights_h5.h"
#include "sampler/sampler.h"

namespace ditgen::app {

namespace {
using Clock = std::chrono::steady_clock;

DiTConfig tiny_config() {
  DiTConfig c;
  c.dim = 64;
  c.ffn_dim = 128;
  c.num_heads = 2;
  c.num_layers = 2;
  c.freq_dim = 32;
  c.ctx_dim = 32;
  c.frame_height = 32;
  c.frame_width = 32;
  c.sample_steps = 4;
  return c;
}

void draw_progress(int done, int total, double elapsed) {
  const int width = 30;
  const int filled = total ? width * done / total : width;
  const double rate = elapsed > 0 ? done / elapsed : 0;
  const double eta = rate > 0 ? (total - done) / rate : 0;
  std::fprintf(stderr, "\r[%.*s%*s] %d/%d steps  %.2f s/step  ETA %.0f s ", filled,
               "##############################", width - filled, "", done, total, rate > 0 ? 1.0 / rate : 0.0, eta);
  if (done == total) std::fprintf(stderr, "\n");
  std::fflush(stderr);
}
}  // namespace

namespace {
// Byte stream over a pipe between the loading child and the parent.
struct PipeOut {
  int fd;
  bool ok = true;
  void bytes(const void* p, size_t n) {
    const char* c = static_cast<const char*>(p);
    while (ok && n > 0) {
      const ssize_t w = ::write(fd, c, n);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) ok = false;
      else c += w, n -= size_t(w);
    }
  }
  void u64(uint64_t v) { bytes(&v, sizeof v); }
  void f64(double v) { bytes(&v, sizeof v); }
  void str(const std::string& s) { u64(s.size()), bytes(s.data(), s.size()); }
};
struct PipeIn {
  int fd;
  bool ok = true;
  void bytes(void* p, size_t n) {
    char* c = static_cast<char*>(p);
    while (ok && n > 0) {
      const ssize_t r = ::read(fd, c, n);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) ok = false;
      else c += r, n -= size_t(r);
    }
  }
  uint64_t u64() {
    uint64_t v = 0;
    bytes(&v, sizeof v);
    return v;
  }
  double f64() {
    double v = 0;
    bytes(&v, sizeof v);
    return v;
  }
  std::string str() {
    const uint64_t n = u64();
    if (!ok || n > (1u << 20)) return ok = false, std::string();
    std::string s(n, '\0');
    bytes(s.data(), n);
    return s;
  }
};
}  // namespace

io::LoadedModel load_weights_isolated(const std::string& path, bool read_data) {
  int fds[2];
  if (::pipe(fds) != 0) return read_data ? io::load_weights(path) : io::inspect_weights(path);
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fds[0]), ::close(fds[1]);
    return read_data ? io::load_weights(path) : io::inspect_weights(path);
  }
  if (pid == 0) {  // child: parse, send, and leave without running exit handlers
    ::close(fds[0]);
    std::signal(SIGPIPE, SIG_IGN);
    PipeOut out{fds[1]};
    try {
      io::LoadedModel m = read_data ? io::load_weights(path) : io::inspect_weights(path);
      out.u64(0);
      const auto fields = m.config.fields();
      out.u64(fields.size());
      for (const auto& [k, v] : fields) out.str(k), out.f64(v);
      out.u64(m.tensors.size());
      for (const auto& t : m.tensors) {
        out.str(t.name), out.str(t.dtype), out.u64(t.shape.size());
        for (int64_t d : t.shape) out.u64(uint64_t(d));
      }
      out.u64(m.warnings.size());
      for (const auto& w : m.warnings) out.str(w);
      if (read_data)
        for (auto& e : m.weights.tensor_table(m.config)) {
          out.u64(uint64_t(e.tensor->size()));
          out.bytes(e.tensor->data(), sizeof(float) * size_t(e.tensor->size()));
          *e.tensor = Tensor();  // free as we go: the two processes together hold about one copy
        }
    } catch (const std::exception& e) {
      out.u64(1), out.str(e.what());
    }
    ::close(fds[1]);
    ::_exit(out.ok ? 0 : 3);
  }
  ::close(fds[1]);
  PipeIn in{fds[0]};
  io::LoadedModel m;
  std::string error;
  const uint64_t kind = in.u64();
  if (in.ok && kind == 1) {
    error = in.str();
  } else if (in.ok && kind == 0) {
    const uint64_t nf = in.u64();
    for (uint64_t i = 0; in.ok && i < nf; ++i) {
      const std::string k = in.str();
      const double v = in.f64();
      if (in.ok) m.config.set_field(k, v);
    }
    const uint64_t nt = in.u64();
    for (uint64_t i = 0; in.ok && i < nt; ++i) {
      io::TensorInfo t;
      t.name = in.str(), t.dtype = in.str();
      const uint64_t rank = in.u64();
      for (uint64_t r = 0; in.ok && r < rank && r < 16; ++r) t.shape.push_back(int64_t(in.u64()));
      m.tensors.push_back(std::move(t));
    }
    const uint64_t nw = in.u64();
    for (uint64_t i = 0; in.ok && i < nw; ++i) m.warnings.push_back(in.str());
    if (in.ok && read_data)
      for (auto& e : m.weights.tensor_table(m.config)) {
        e.tensor->reset(e.shape);
        if (in.u64() != uint64_t(e.tensor->size())) in.ok = false;
        in.bytes(e.tensor->data(), sizeof(float) * size_t(e.tensor->size()));
        if (!in.ok) break;
      }
  } else {
    in.ok = false;
  }
  ::close(fds[0]);
  int st = 0;
  while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  if (!error.empty()) throw std::runtime_error(error);
  if (!in.ok || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    std::ostringstream s;
    s << "weight file '" << path << "': reading it failed in the HDF5 library (";
    if (WIFSIGNALED(st)) {
      s << "crashed with signal " << WTERMSIG(st) << ", " << strsignal(WTERMSIG(st));
    } else {
      s << "exit status " << (WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    }
    s << "); the file is malformed or corrupt";
    throw std::runtime_error(s.str());
  }
  return m;
}

std::unique_ptr<DiTModel> load_model(const std::string& spec) {
  if (spec == "builtin:tiny") {
    const DiTConfig c = tiny_config();
    return std::make_unique<DiTModel>(c, DiTWeights::random(c, 1234));
  }
  io::LoadedModel m = load_weights_isolated(spec, true);
  return std::make_unique<DiTModel>(m.config, std::move(m.weights));
}

double peak_rss_mb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return double(ru.ru_maxrss) / 1024.0;
}

int64_t available_memory_bytes() {
  std::ifstream f("/proc/meminfo");
  std::string key;
  int64_t kb = 0;
  std::string unit;
  while (f >> key >> kb >> unit)
    if (key == "MemAvailable:") return kb * 1024;
  return int64_t(sysconf(_SC_AVPHYS_PAGES)) * sysconf(_SC_PAGESIZE);
}

GenerateResult generate(DiTModel& model, attn::AttentionBackend& backend, const GenerateOptions& opt) {
  const DiTConfig& cfg = model.config();
  opt.shape.validate(cfg);
  if (opt.steps < 1 || opt.steps > 10000)
    throw std::invalid_argument("steps = " + std::to_string(opt.steps) + " is out of range: expected 1 to 10000");
  if (!std::isfinite(opt.cfg) || opt.cfg < 0 || opt.cfg > 100) {
    std::ostringstream s;
    s << "cfg = " << opt.cfg << " is out of range: expected 0 to 100";
    throw std::invalid_argument(s.str());
  }
  const sampler::Solver solver = sampler::parse_solver(opt.solver);
  const sampler::Guidance guidance(opt.cfg);
  const int batch = guidance.active() ? 2 : 1;

  // Conditioning: (B, L, E) with the conditional row first and the null row second.
  Tensor ctx;
  if (cfg.num_classes > 0) {
    std::vector<std::vector<int>> labels{opt.labels};
    if (batch == 2) labels.push_back(std::vector<int>(size_t(cfg.ctx_len), cfg.num_classes));
    for (int l : opt.labels)
      if (l < 0 || l >= cfg.num_classes)
        throw std::invalid_argument("label " + std::to_string(l) + " is out of range: expected 0 to " +
                                    std::to_string(cfg.num_classes - 1));
    ctx = model.label_context(labels);
  } else {
    // The model takes raw context (DiTModel::forward); generate has no reader for it yet.
    throw std::invalid_argument("this model has num_classes = 0 (raw context, e.g. text-encoder output); generate "
                                "conditions label models only: expected num_classes > 0");
  }

  // The int64 estimate overflows for absurd sizes (frames x height x width beyond 2^63): bound
  // it in floating point first, with the same terms, and refuse such runs on that figure.
  const double video_d = double(opt.shape.frames) * opt.shape.height * opt.shape.width * cfg.in_channels;
  const double tokens_d = double(opt.shape.frames / cfg.patch_t) * double(opt.shape.height / cfg.patch_h) *
                          double(opt.shape.width / cfg.patch_w);
  const double rough = 4.0 * (6.0 * batch * video_d +
                              batch * tokens_d * (10.0 * cfg.dim + std::max(cfg.ffn_dim, cfg.patch_values())));
  const bool absurd = !(rough < 1e17);
  const int64_t need = absurd ? 0
                              : model.estimate_peak_bytes(opt.shape, batch) +
                                    backend.state_bytes(opt.shape.tokens(cfg), batch, cfg.num_heads, cfg.head_dim(),
                                                        cfg.num_layers);
  const int64_t limit = opt.memory_limit_bytes > 0 ? opt.memory_limit_bytes : available_memory_bytes();
  if (absurd || need > limit) {
    std::ostringstream s;
    s << "this run needs about ";
    if (absurd) {
      s << rough / double(1 << 20) << " MiB (" << tokens_d;
    } else {
      s << need / (1 << 20) << " MiB (" << opt.shape.tokens(cfg);
    }
    s << " tokens, batch " << batch << ") but only " << limit / (1 << 20)
      << " MiB are available; use fewer frames or a smaller size";
    throw std::runtime_error(s.str());
  }

  const int64_t n = int64_t(opt.shape.frames) * opt.shape.height * opt.shape.width * cfg.in_channels;
  GenerateResult res;
  res.tokens = opt.shape.tokens(cfg);
  res.attn_spec = backend.spec();
  res.video.resize(size_t(n));
  sampler::gaussian_noise(opt.seed, res.video.data(), n);

  std::vector<float> xin(size_t(batch * n)), vout(size_t(batch * n));
  const std::vector<double> sigmas = sampler::flow_sigmas(opt.steps, cfg.sample_shift);
  const auto t0 = Clock::now();
  auto velocity = [&](const float* x, double sigma, int step, float* v) {
    for (int b = 0; b < batch; ++b) std::copy_n(x, n, xin.data() + b * n);
    const std::vector<double> t(size_t(batch), 1000.0 * sigma);
    attn::AttentionContext actx;
    actx.step = step;
    actx.num_steps = opt.steps;
    try {
      model.forward(xin.data(), opt.shape, batch, t.data(), ctx, backend, actx, vout.data(), &res.profile);
    } catch (const NumericalError& e) {
      throw std::runtime_error("numerical guard: non-finite value at step " + std::to_string(step) + ", block " +
                               std::to_string(e.layer()) + " (check the weights and the attention method)");
    }
    if (batch == 2) {
      guidance.combine(vout.data(), vout.data() + n, v, n);
    } else {
      std::copy_n(vout.data(), n, v);
    }
  };
  auto hook = [&](int step, int steps, const float* x) {
    for (int64_t i = 0; i < n; ++i)
      if (!std::isfinite(x[i]))
        throw std::runtime_error("numerical guard: non-finite sample after step " + std::to_string(step));
    if (opt.progress) draw_progress(step + 1, steps, std::chrono::duration<double>(Clock::now() - t0).count());
    if (io::interrupt_requested()) throw io::Interrupted();
  };
  sampler::sample(solver, res.video.data(), n, sigmas, velocity, hook);
  res.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  res.seconds_per_step = res.seconds / opt.steps;
  res.attn_report = backend.report_json();

  PixelDecoder decoder;
  std::vector<uint8_t> px;
  const VideoShape out_shape = decoder.decode(res.video.data(), opt.shape, cfg.in_channels, px);
  res.frames.frames = out_shape.frames;
  res.frames.height = out_shape.height;
  res.frames.width = out_shape.width;
  res.frames.channels = cfg.in_channels;
  res.frames.data = std::move(px);
  return res;
}

}  // namespace ditgen::app
