#pragma once
// Output files appear whole or not at all: writers write to a temporary file beside the target
// and rename it into place on commit(). Uncommitted temporaries are removed by the destructor,
// and by remove_all_pending() from a signal-safe path (interruption).
#include <memory>
#include <string>
#include <vector>

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

// The outputs of one run appear together or not at all: writers given a batch leave their
// finished temporaries in it, and commit() renames them all into place once every output has
// been written. Destroyed uncommitted, it removes the temporaries and the (empty) directories
// that writers created for it.
class OutputBatch {
 public:
  OutputBatch() = default;
  ~OutputBatch();
  OutputBatch(const OutputBatch&) = delete;
  OutputBatch& operator=(const OutputBatch&) = delete;

  void add(std::unique_ptr<AtomicOutput> out);
  void created_directory(std::string dir);
  void commit();

 private:
  std::vector<std::unique_ptr<AtomicOutput>> pending_;
  std::vector<std::string> dirs_;
  bool committed_ = false;
};

// Commits `out` now, or leaves it to `batch` when one is given.
void publish(std::unique_ptr<AtomicOutput> out, OutputBatch* batch);

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
