// Dropout on four consecutive elements whose global indices form one Philox block (runtime/philox.h): the
// arithmetic dropout.cu, layernorm.cu's fused kernels and the CPU backend share, so their masks and values agree
// bit for bit.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "runtime/philox.h"

namespace erlangshen::cuda {

// v with dropout by the keep bits of the Philox block r: lane w kept and scaled when r.v[w] >= threshold, else 0.
__device__ __forceinline__ float4 dropped4(float4 v, const Philox4& r, uint32_t threshold, float scale) {
  return make_float4(r.v[0] >= threshold ? v.x * scale : 0.0f, r.v[1] >= threshold ? v.y * scale : 0.0f,
                     r.v[2] >= threshold ? v.z * scale : 0.0f, r.v[3] >= threshold ? v.w * scale : 0.0f);
}

}  // namespace erlangshen::cuda
