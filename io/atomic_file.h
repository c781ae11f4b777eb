#pragma once
// Output files appear whole or not at all: writers write to a temporary file beside the target
// and rename it into place on commit(). Uncommitted temporaries are removed by the destructor,
// and by remove_all_pending() from a signal-safe path (interruption).
#include <string>

namespace ditgen::io {

class AtomicOutput {
 public:
  // Checks that the directory exists and is writable, and that `path` is absent unless
  // `overwrite`; throws std::runtime_error naming the path otherwise.
  AtomicOutput(std::string path, bool overwrite);
  ~AtomicOutput();
  AtomicOutput(const AtomicOutput&) = delete;
  AtomicOutput& operator=(const AtomicOutput&) = delete;

  // Temporary path in the same directory, ending in the target's extension (codecs pick the
  // container from it).
  const std::string& temp_path() const { return temp_; }
  const std::string& path() const { return path_; }
  void commit();

 private:
  std::string path_, temp_;
  bool committed_ = false;
};

// True if a file can be created in `dir` (tried, then removed).
bool directory_writable(const std::string& dir);

// Lower-cased extension with the dot (".mp4"), or "" if none.
std::string extension(const std::string& path);

// Interruption (SIGINT/SIGTERM): the first signal sets a flag that long loops poll (the
// sampler between steps, AtomicOutput::commit, which then refuses to publish); a second signal
// removes every pending temporary (async-signal-safe) and exits at once with 128 + signal.
// SIGXFSZ (file size limit) is ignored so that writes fail with EFBIG and are reported.
void install_interrupt_handlers();
bool interrupt_requested();
void request_interrupt();  // for tests
void clear_interrupt();    // for tests

class Interrupted : public std::exception {
 public:
  const char* what() const noexcept override { return "interrupted by signal; no output written"; }
};

}  // namespace ditgen::io
