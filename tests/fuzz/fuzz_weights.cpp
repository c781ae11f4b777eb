// libFuzzer harness: see tests/fuzz/harness.h (HDF5 weight file images).
#include "tests/fuzz/harness.h"
#include "tests/fuzz/entry.h"

DITGEN_FUZZ_HARNESS(ditgen::fuzz::weights_one)
