// libFuzzer harness: see tests/fuzz/harness.h (PARO calibration files).
#include "tests/fuzz/harness.h"
#include "tests/fuzz/entry.h"

DITGEN_FUZZ_HARNESS(ditgen::fuzz::paro_calib_one)
