// Shared pieces of the CUDA kernels: error checks, launch geometry and fixed-order block reductions.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "runtime/check.h"
#include "runtime/cuda/context.h"
#include "runtime/cuda/cuda_check.h"
#include "runtime/cuda/kernels.h"

// After a kernel launch: reports launch-configuration errors at the call site.
#define ERL_CUDA_LAUNCHED() ERL_CUDA_CHECK(cudaGetLastError())
// A kernel launch: ERL_KERNEL(grid, block, shared_bytes, stream, kernel)(args...) is
// kernel<<<grid, block, shared_bytes, stream>>>(args...). The kernel comes last so that a template's commas need
// no parentheses. The CPU emulation of the backend (tests/cuda_emulation, which runs these kernels in CI) defines it
// as a call that runs every thread of the grid on the host.
// Dynamic shared memory of a kernel: ERL_DYNAMIC_SHARED(smem); declares `unsigned char* smem`-like storage, 128-byte
// aligned (the emulation gives every block a buffer of the launch's size).
#ifndef ERL_DYNAMIC_SHARED
#define ERL_DYNAMIC_SHARED(name) extern __shared__ __align__(128) unsigned char name[]
#endif
#ifndef ERL_KERNEL
#define ERL_KERNEL(grid, block, shared_bytes, stream, ...) __VA_ARGS__<<<grid, block, shared_bytes, stream>>>
#endif

namespace erlangshen::cuda {

inline cudaStream_t stream_of(const Launch& l) { return static_cast<cudaStream_t>(l.stream); }

// The current device's shared memory per block for a kernel that opts in (allow_smem): 227 KiB on an H100 / H200,
// 163 KiB on an A100.
inline int device_smem_optin() {
  int dev = 0, v = 0;
  ERL_CUDA_CHECK(cudaGetDevice(&dev));
  ERL_CUDA_CHECK(cudaDeviceGetAttribute(&v, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
  return v;
}

// Lets `kernel` launch with `bytes` of dynamic shared memory (above the 48 KiB a kernel gets without opting in).
template <class Kernel>
void allow_smem(Kernel* kernel, size_t bytes) {
  ERL_CUDA_CHECK(cudaFuncSetAttribute(reinterpret_cast<const void*>(kernel),
                                      cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
}

inline Context& need_context(const Launch& l, const char* op) {
  ERL_CHECK(l.context != nullptr, "cuda::" << op << " needs a backend context: run it with "
                                            "Exec{Device::CUDA, ctx.stream(), &ctx} (runtime/cuda/context.h)");
  return *l.context;
}

inline unsigned grid_for(int64_t n, int threads, int64_t max_blocks = 65535LL * 16) {
  int64_t b = (n + threads - 1) / threads;
  if (b < 1) b = 1;
  return static_cast<unsigned>(b < max_blocks ? b : max_blocks);
}

// Sum over a warp, fixed butterfly order: every lane gets the same bits whatever the data.
template <class T>
__device__ __forceinline__ T warp_sum(T v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Block-wide sum (blockDim.x a multiple of 32, <= 1024): warp sums, then warp 0 sums the warp results in a
// fixed tree. Every thread gets the result. `smem` holds 32 T. Contains __syncthreads: call from all threads.
template <class T>
__device__ T block_sum(T v, T* smem) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  v = warp_sum(v);
  __syncthreads();  // smem may still be read by a previous call
  if (lane == 0) smem[warp] = v;
  __syncthreads();
  T r = lane < warps ? smem[lane] : T(0);
  r = warp_sum(r);
  return r;
}
__device__ inline float block_max(float v, float* smem) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) smem[warp] = v;
  __syncthreads();
  float r = lane < warps ? smem[lane] : -INFINITY;
  return warp_max(r);
}

}  // namespace erlangshen::cuda
