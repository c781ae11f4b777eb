// libFuzzer harness: see tests/fuzz/harness_prompt.h (prompt clean-up and tokenizer).
#include "tests/fuzz/harness_prompt.h"
#include "tests/fuzz/entry.h"

DITGEN_FUZZ_HARNESS(ditgen::fuzz::prompt_one)
