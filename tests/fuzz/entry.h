#pragma once
// The libFuzzer entry points of a harness (one per fuzz_*.cpp): BODY is a harness body from
// harness.h or harness_cli.h, returning "" when the contract held; a broken invariant is printed
// and aborts, so that libFuzzer keeps the input. OpenMP runs on one thread (one core per
// harness in run_fuzzers.sh).
#include <omp.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#define DITGEN_FUZZ_HARNESS(BODY)                                            \
  extern "C" int LLVMFuzzerInitialize(int*, char***) {                       \
    omp_set_num_threads(1);                                                  \
    return 0;                                                                \
  }                                                                          \
  extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {  \
    const std::string broken = BODY(data, size);                             \
    if (!broken.empty()) {                                                   \
      std::fprintf(stderr, "invariant broken: %s\n", broken.c_str());        \
      std::abort();                                                          \
    }                                                                        \
    return 0;                                                                \
  }
