#pragma once
// Memory figures of this process and machine, for the estimate a run is checked against.
#include <cstdint>

namespace ditgen::pipeline {

// Peak resident set size of this process so far, MiB.
double peak_rss_mb();
// Memory available to a new allocation now, bytes (MemAvailable).
int64_t available_memory_bytes();

}  // namespace ditgen::pipeline
