#include "pipeline/isolated_loader.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <sstream>
#include <stdexcept>

namespace ditgen::pipeline {

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

}  // namespace ditgen::pipeline
