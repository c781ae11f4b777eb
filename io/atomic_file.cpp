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
}

AtomicOutput::~AtomicOutput() {
  if (!committed_) {
    std::error_code ec;
    fs::remove_all(temp_, ec);
  }
  std::lock_guard<std::mutex> lock(g_pending_mutex);
  pending().erase(temp_);
}

void AtomicOutput::commit() {
  std::error_code ec;
  if (!fs::exists(temp_, ec)) throw std::runtime_error("writer produced no file for '" + path_ + "'");
  fs::rename(temp_, path_, ec);
  if (ec) throw std::runtime_error("cannot move the finished output into '" + path_ + "': " + ec.message());
  committed_ = true;
}

void install_interrupt_handlers() {
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = [](int) { g_interrupted.store(true); };
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

bool interrupt_requested() { return g_interrupted.load(); }
void request_interrupt() { g_interrupted.store(true); }

}  // namespace ditgen::io
