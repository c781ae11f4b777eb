// libFuzzer harness: see tests/fuzz/harness_cli.h (command-line values).
#include <cstdio>
#include <cstdlib>

#include "tests/fuzz/harness_cli.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string broken = ditgen::fuzz::cli_values_one(data, size);
  if (!broken.empty()) {
    std::fprintf(stderr, "invariant broken: %s\n", broken.c_str());
    std::abort();
  }
  return 0;
}
