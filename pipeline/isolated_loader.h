#pragma once
// Reading HDF5 weight files in a child process (libhdf5 1.10 crashes on some malformed files).
#include <string>

#include "io/weights_h5.h"

namespace ditgen::pipeline {

// io::load_weights (read_data) or io::inspect_weights in a child process whose result comes
// back through a pipe: libhdf5 1.10 crashes on some malformed files (tests/fuzz, see
// docs/robustness.md), and a crash there becomes a std::runtime_error naming the file here.
// Errors the loader reports are rethrown with their message. Peak memory stays about one copy
// of the weights (the child frees each tensor once sent).
io::LoadedModel load_weights_isolated(const std::string& path, bool read_data = true);

}  // namespace ditgen::pipeline
