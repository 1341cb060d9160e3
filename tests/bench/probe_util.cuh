// What the GPU probes (attention_probe.cu, layernorm_probe.cu) share: deterministic fills, a median of CUDA-event
// timings, and how far apart two results are.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <vector>

#include "runtime/cuda/common.cuh"

namespace erlangshen::bench {

// p[i] = offset + scale * u_i, u_i in [-1, 1] from a multiplicative hash of i + salt (no RNG state).
__global__ inline void fill_bf16(__nv_bfloat16* p, int64_t n, float scale, float offset, uint32_t salt) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    p[i] = __float2bfloat16_rn(
        offset + scale * static_cast<float>(static_cast<int>(((i + salt) * 2654435761ull) % 2001) - 1000) / 1000.0f);
}
__global__ inline void fill_f32(float* p, int64_t n, float scale, float offset, uint32_t salt) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    p[i] = offset + scale * static_cast<float>(static_cast<int>(((i + salt) * 2654435761ull) % 2001) - 1000) / 1000.0f;
}

// Median milliseconds of `reps` calls of f on `stream`, each between two events, after one warm-up call.
inline double median_ms(cudaStream_t stream, int reps, const std::function<void()>& f) {
  cudaEvent_t e0, e1;
  ERL_CUDA_CHECK(cudaEventCreate(&e0));
  ERL_CUDA_CHECK(cudaEventCreate(&e1));
  f();  // warm-up (GEMM heuristics, shared-memory attributes)
  std::vector<float> ms(reps);
  for (int r = 0; r < reps; ++r) {
    ERL_CUDA_CHECK(cudaEventRecord(e0, stream));
    f();
    ERL_CUDA_CHECK(cudaEventRecord(e1, stream));
    ERL_CUDA_CHECK(cudaEventSynchronize(e1));
    ERL_CUDA_CHECK(cudaEventElapsedTime(&ms[r], e0, e1));
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  std::sort(ms.begin(), ms.end());
  return ms[reps / 2];
}

// max |a - b| / max |b|
inline double relative_gap(const std::vector<float>& a, const std::vector<float>& b) {
  double diff = 0, scale = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, std::fabs(double(a[i]) - b[i]));
    scale = std::max(scale, std::fabs(double(b[i])));
  }
  return scale > 0 ? diff / scale : diff;
}

}  // namespace erlangshen::bench
