// libFuzzer harness: see tests/fuzz/harness_safetensors.h (safetensors files).
#include "tests/fuzz/harness_safetensors.h"
#include "tests/fuzz/entry.h"

DITGEN_FUZZ_HARNESS(ditgen::fuzz::safetensors_one)
