// main() of the GPU bench tools: exit 2 with "<tool>: no CUDA GPU visible" when there is none (so a script can
// tell a missing GPU from a failure), 1 with "<tool>: <error>" on an exception, else what `run()` returns.
#pragma once
#include <cuda_runtime.h>

#include <cstdio>
#include <exception>

namespace erlangshen::bench {

template <class Run>
int gpu_tool_main(const char* tool, Run&& run) {
  try {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) {
      std::fprintf(stderr, "%s: no CUDA GPU visible\n", tool);
      return 2;
    }
    return run();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", tool, e.what());
    return 1;
  }
}

}  // namespace erlangshen::bench
