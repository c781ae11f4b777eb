#pragma once

namespace ditgen::app {

// OpenBLAS reads OPENBLAS_CORETYPE once, when the dynamic loader maps it (before main). On an
// AVX-512 CPU whose variable is unset or pinned to Haswell (AVX2 kernels, 0.55 of the AVX-512
// rate here: bench/RESULTS.md), re-executes the process once with SkylakeX so that the linear
// layers get OpenBLAS's AVX-512 kernels; any other explicit value is respected, and
// DITGEN_KEEP_OPENBLAS_CORETYPE=1 turns the re-execution off. Returns when nothing is to be
// done or the exec failed (the run goes on with what was loaded).
void reexec_for_openblas_coretype(char** argv);

}  // namespace ditgen::app
