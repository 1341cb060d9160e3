#include "runtime/blas_select.h"

#include <unistd.h>

#include <cstdlib>
#include <cstring>

extern "C" char* openblas_get_corename(void);

namespace erlangshen {

std::string blas_core_name() {
  const char* name = openblas_get_corename();
  return name ? name : "unknown";
}

void select_blas_kernels(char** argv) {
  if (std::getenv("OPENBLAS_CORETYPE")) return;
  const char* opt = std::getenv("ERLANGSHEN_BLAS_AUTOSELECT");
  if (opt && std::strcmp(opt, "0") == 0) return;
  const std::string core = blas_core_name();
  if (core != "Prescott" && core != "prescott") return;
  __builtin_cpu_init();
  const char* choice = nullptr;
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl"))
    choice = "SkylakeX";
  else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    choice = "Haswell";
  if (!choice) return;
  setenv("OPENBLAS_CORETYPE", choice, 1);
  execv("/proc/self/exe", argv);  // returns only on failure: keep going with the generic kernels
}

}  // namespace erlangshen
