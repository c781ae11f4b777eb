// libFuzzer harness: see tests/fuzz/harness.h (--attn specs).
#include "tests/fuzz/harness.h"
#include "tests/fuzz/entry.h"

DITGEN_FUZZ_HARNESS(ditgen::fuzz::attn_spec_one)
