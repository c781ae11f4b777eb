#include "io/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <set>
#include <stdexcept>

namespace fs = std::filesystem;

namespace ditgen::io {

namespace {
std::atomic<bool> g_interrupted{false};
std::mutex g_pending_mutex;
std::set<std::string>& pending() {
  static std::set<std::string> p;
  return p;
}

// The same temporaries in fixed storage that a signal handler may read: a slot is published
// (state 2) only after its path is complete, and cleared before it is reused.
// A run's batch holds every output at once (a frames directory holds one per frame).
constexpr int kSignalSlots = 2048;
constexpr size_t kSignalPathMax = 1024;
char g_signal_paths[kSignalSlots][kSignalPathMax];
std::atomic<int> g_signal_state[kSignalSlots];  // 0 free, 1 being written, 2 published

void signal_slot_add(const std::string& path) {
  if (path.size() >= kSignalPathMax) return;
  for (int i = 0; i < kSignalSlots; ++i) {
    int expected = 0;
    if (!g_signal_state[i].compare_exchange_strong(expected, 1)) continue;
    std::memcpy(g_signal_paths[i], path.c_str(), path.size() + 1);
    g_signal_state[i].store(2);
    return;
  }
}

void signal_slot_remove(const std::string& path) {
  for (int i = 0; i < kSignalSlots; ++i)
    if (g_signal_state[i].load() == 2 && path == g_signal_paths[i]) {
      g_signal_state[i].store(0);
      return;
    }
}

void on_interrupt(int sig) {
  if (!g_interrupted.exchange(true)) {
    static const char msg[] = "\nditgen: interrupted; stopping after the current step (signal again to quit now)\n";
    ssize_t ignored = ::write(2, msg, sizeof msg - 1);
    (void)ignored;
    return;
  }
  for (int i = 0; i < kSignalSlots; ++i)
    if (g_signal_state[i].load() == 2) ::unlink(g_signal_paths[i]);
  ::_exit(128 + sig);
}
}  // namespace

std::string extension(const std::string& path) {
  std::string e = fs::path(path).extension().string();
  std::transform(e.begin(), e.end(), e.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return e;
}

bool directory_writable(const std::string& dir) {
  if (::access(dir.c_str(), W_OK) != 0) return false;
  // Root passes access() everywhere; only creating a file proves it.
  const std::string probe = dir + "/.ditgen-probe-" + std::to_string(::getpid());
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
  if (fd < 0) return false;
  ::close(fd);
  ::unlink(probe.c_str());
  return true;
}

AtomicOutput::AtomicOutput(std::string path, bool overwrite) : path_(std::move(path)) {
  const fs::path p(path_);
  fs::path dir = p.parent_path();
  if (dir.empty()) dir = ".";
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    throw std::runtime_error("output directory '" + dir.string() + "' does not exist (for '" + path_ + "')");
  if (!directory_writable(dir.string()))
    throw std::runtime_error("output directory '" + dir.string() + "' is not writable (for '" + path_ + "')");
  if (fs::exists(p, ec) && !overwrite)
    throw std::runtime_error("output file '" + path_ + "' already exists; pass --overwrite to replace it");
  if (fs::is_directory(p, ec)) throw std::runtime_error("output path '" + path_ + "' is a directory");
  temp_ = (dir / ("." + p.stem().string() + ".tmp-" + std::to_string(::getpid()) + p.extension().string())).string();
  std::lock_guard<std::mutex> lock(g_pending_mutex);
  pending().insert(temp_);
  signal_slot_add(temp_);
}

AtomicOutput::~AtomicOutput() {
  if (!committed_) {
    std::error_code ec;
    fs::remove_all(temp_, ec);
  }
  std::lock_guard<std::mutex> lock(g_pending_mutex);
  pending().erase(temp_);
  signal_slot_remove(temp_);
}

void AtomicOutput::commit() {
  std::error_code ec;
  if (!fs::exists(temp_, ec)) throw std::runtime_error("writer produced no file for '" + path_ + "'");
  // Interrupted while writing: publish nothing (the destructor removes the temporary).
  if (interrupt_requested()) throw Interrupted();
  fs::rename(temp_, path_, ec);
  if (ec) throw std::runtime_error("cannot move the finished output into '" + path_ + "': " + ec.message());
  committed_ = true;
}

OutputBatch::~OutputBatch() {
  pending_.clear();  // removes the temporaries
  if (committed_) return;
  std::error_code ec;
  for (auto it = dirs_.rbegin(); it != dirs_.rend(); ++it)
    if (fs::is_empty(*it, ec)) fs::remove(*it, ec);
}

void OutputBatch::add(std::unique_ptr<AtomicOutput> out) { pending_.push_back(std::move(out)); }

void OutputBatch::created_directory(std::string dir) { dirs_.push_back(std::move(dir)); }

void OutputBatch::commit() {
  // Checked once before the first rename, so that an interruption publishes none of them.
  if (interrupt_requested()) throw Interrupted();
  for (auto& out : pending_) out->commit();
  committed_ = true;
}

void publish(std::unique_ptr<AtomicOutput> out, OutputBatch* batch) {
  if (batch) {
    batch->add(std::move(out));
  } else {
    out->commit();
  }
}

void install_interrupt_handlers() {
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_interrupt;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  std::signal(SIGXFSZ, SIG_IGN);
}

bool interrupt_requested() { return g_interrupted.load(); }
void request_interrupt() { g_interrupted.store(true); }
void clear_interrupt() { g_interrupted.store(false); }

}  // namespace ditgen::io
