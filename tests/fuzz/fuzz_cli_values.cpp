// libFuzzer harness: see tests/fuzz/harness_cli.h (command-line values).
#include "tests/fuzz/harness_cli.h"
#include "tests/fuzz/entry.h"

DITGEN_FUZZ_HARNESS(ditgen::fuzz::cli_values_one)
