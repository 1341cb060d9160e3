// OpenBLAS kernel selection. Debian 12's OpenBLAS 0.3.21 does not recognise CPUs released after it (Sapphire
// and Emerald Rapids, for one) and falls back to its generic "Prescott" SSE3 kernels, 3-5x slower. When that
// happens and the user has not chosen (OPENBLAS_CORETYPE unset, ERLANGSHEN_BLAS_AUTOSELECT != 0), the
// process re-executes itself once with OPENBLAS_CORETYPE set to the newest kernel family the CPU supports
// (SkylakeX with AVX-512, else Haswell with AVX2+FMA). OpenBLAS reads the variable only at load time.
#pragma once
#include <string>

namespace erlangshen {

// Call first thing in main(); returns only if no re-exec happened (or it failed).
void select_blas_kernels(char** argv);
// The OpenBLAS kernel family in use, e.g. "SkylakeX".
std::string blas_core_name();

}  // namespace erlangshen
