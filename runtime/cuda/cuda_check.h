// ERL_CUDA_CHECK: a CUDA runtime call that must succeed, or an Error naming the call. Host-only (no device code),
// so plain C++ files of the backend (op_profiler.cpp) use it as well as the kernels (through common.cuh).
#pragma once
#include <cuda_runtime.h>

#include "runtime/check.h"

#define ERL_CUDA_CHECK(expr)                                                                      \
  do {                                                                                            \
    cudaError_t erl_e_ = (expr);                                                                  \
    ERL_CHECK(erl_e_ == cudaSuccess, "CUDA error in " #expr ": " << cudaGetErrorString(erl_e_));   \
  } while (0)
