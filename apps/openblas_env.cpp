#include "apps/openblas_env.h"

#include <unistd.h>

#include <cstdlib>
#include <string>

namespace ditgen::app {

void reexec_for_openblas_coretype(char** argv) {
  if (std::getenv("DITGEN_KEEP_OPENBLAS_CORETYPE") != nullptr || !__builtin_cpu_supports("avx512f")) return;
  const char* cur = std::getenv("OPENBLAS_CORETYPE");
  if (cur != nullptr && std::string(cur) != "Haswell") return;
  setenv("OPENBLAS_CORETYPE", "SkylakeX", 1);
  setenv("DITGEN_KEEP_OPENBLAS_CORETYPE", "1", 1);  // the child keeps what it was given
  execv("/proc/self/exe", argv);
  if (cur != nullptr)
    setenv("OPENBLAS_CORETYPE", cur, 1);
  else
    unsetenv("OPENBLAS_CORETYPE");
}

}  // namespace ditgen::app
