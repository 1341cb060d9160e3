// CPU emulation of the CUDA programming model, for running the backend's own kernels (runtime/cuda) in CI on a
// machine without a GPU. Force-included (-include) into every runtime/cuda source when tests/gpu/standalone is
// configured with -DERLANGSHEN_CUDA_EMULATION=ON: the .cu files then compile as C++ with the host compiler, and
// link against this folder's host implementations of the CUDA runtime (fake_cudart.cpp) and of cuBLASLt
// (fake_cublaslt.cpp) instead of NVIDIA's libraries. The GPU tests in tests/gpu run unchanged against it.
//
// What is emulated (grid_runner.cpp):
//   - a launch, ERL_KERNEL(grid, block, shared_bytes, stream, kernel)(args...), runs the blocks one after the
//     other; the threads of a block are fibers on one host thread, switched only at __syncthreads and at warp
//     collectives, in thread order. A missing __syncthreads therefore shows up as a wrong result (a thread reads
//     shared memory before the threads that write it have run), a collective reached by part of a warp or a
//     __syncthreads reached by part of a block as a "deadlock" error naming the kernel and block.
//   - __shared__ variables are static: blocks never run concurrently, so one copy serves every block in turn.
//     Dynamic shared memory (ERL_DYNAMIC_SHARED) is one buffer per launch, filled with 0xff bytes (NaN as float or
//     bf16) before every block, so a kernel that reads shared memory it never wrote gets NaNs, as it may on a GPU.
//   - nvcuda::wmma (wmma_emulation.h) and __syncwarp.
//   - warp collectives (__shfl_xor_sync, __shfl_sync, __shfl_down_sync, __ballot_sync) over full warps
//     (mask 0xffffffff; anything else is an error: the backend uses only full-warp collectives), and a gather
//     that mma.cuh's mma.sync and ldmatrix build on; cp.async copies deferred to the thread's wait.
//   - streams and events (streams.cpp): a launch, async copy or memset is queued on its stream and runs only when
//     something needs it finished (a synchronisation, a stream waiting on a later event, a cuBLASLt call on the
//     stream), so each stream's work runs as late as CUDA's ordering rules allow: work on two streams that the code
//     does not order with events runs in the wrong order here, and the reader sees stale values.
// What it cannot show: performance, register or shared-memory limits, data races between blocks, and anything
// of NVIDIA's libraries beyond the documented contract that fake_cublaslt.cpp implements.
#pragma once
#ifndef ERL_CUDA_EMULATION
#define ERL_CUDA_EMULATION 1
#endif

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <tuple>
#include <type_traits>

// The CUDA headers define the execution-space keywords as attributes the host compiler ignores; here they mean
// ordinary host code.
#undef __global__
#undef __device__
#undef __host__
#undef __shared__
#undef __forceinline__
#undef __launch_bounds__
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(...)

namespace erl_emu {

// Coordinates of the emulated thread that is running (valid inside a kernel only).
struct ThreadCoords {
  uint3 thread_idx;
  uint3 block_idx;
  dim3 block_dim;
  dim3 grid_dim;
};
const ThreadCoords& coords();

// Block barrier.
void syncthreads();

// A full-warp collective: every lane passes `value` (its bits, up to 8 bytes) and gets back the bits of the value
// of the lane the operation names (or, for Ballot, the mask of lanes whose value is non-zero).
enum class WarpOp { ShflXor, Shfl, ShflDown, ShflUp, Ballot, Gather };
uint64_t warp_collective(WarpOp op, unsigned mask, uint64_t value, int arg, int width);

// A full-warp gather (what the register-level tensor-core instructions need, runtime/cuda/mma.cuh): every lane passes
// `bytes` bytes (at most kGatherBytes), copied when it reaches the call, and gets every lane's: lane i's at
// all + i * bytes (all: 32 * bytes).
constexpr size_t kGatherBytes = 64;
void warp_gather(const void* mine, size_t bytes, void* all);

// cp.async: a copy this thread queues (global to shared memory), done only at its next cp_async_wait_all, so a
// kernel that reads the destination before waiting (and, for another thread's copies, before a __syncthreads
// after that thread's wait) reads what was there before (0xff bytes at first: NaN), as it may on a GPU.
void cp_async_queue(void* dst, const void* src, size_t bytes);
void cp_async_wait_all();

// The launch's dynamic shared memory (ERL_DYNAMIC_SHARED).
unsigned char* dynamic_shared();

// Runs `thread` once for every thread of the grid (see the header comment).
void run_grid(dim3 grid, dim3 block, size_t shared_bytes, const char* kernel, const std::function<void()>& thread);

// Stream work (streams.cpp): queues `work` on the stream (runs it at once on the legacy stream, null); runs a
// stream's queued work, or every stream's.
void submit(cudaStream_t stream, std::function<void()> work);
void finish_stream(cudaStream_t stream);
void finish_device();

template <class T>
uint64_t bits_of(T v) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "warp collective on a value over 8 bytes");
  uint64_t b = 0;
  std::memcpy(&b, &v, sizeof(T));
  return b;
}
template <class T>
T from_bits(uint64_t b) {
  T v;
  std::memcpy(&v, &b, sizeof(T));
  return v;
}

// ERL_KERNEL's emulated form: holds the launch geometry and a callable that calls the kernel by name (so that a
// kernel template deduces its arguments exactly as with <<<>>>); the call queues a copy of the arguments on the
// stream, and the grid runs for every thread when the stream's work runs.
template <class Call>
struct Launch {
  dim3 grid, block;
  size_t shared_bytes;
  cudaStream_t stream;
  const char* name;
  Call call;
  template <class... Args>
  void operator()(const Args&... args) const {
    submit(stream, [grid = grid, block = block, shared = shared_bytes, name = name, call = call,
                    saved = std::make_tuple(args...)] {
      run_grid(grid, block, shared, name, [&] { std::apply(call, saved); });
    });
  }
};
template <class Call>
Launch<Call> make_launch(dim3 grid, dim3 block, size_t shared_bytes, cudaStream_t stream, const char* name,
                         Call call) {
  return Launch<Call>{grid, block, shared_bytes, stream, name, call};
}

}  // namespace erl_emu

#include "tests/cuda_emulation/wmma_emulation.h"

#define threadIdx (::erl_emu::coords().thread_idx)
#define blockIdx (::erl_emu::coords().block_idx)
#define blockDim (::erl_emu::coords().block_dim)
#define gridDim (::erl_emu::coords().grid_dim)

#define ERL_DYNAMIC_SHARED(name) unsigned char* name = ::erl_emu::dynamic_shared()

#define ERL_KERNEL(grid, block, shared_bytes, stream, ...)                                        \
  ::erl_emu::make_launch(grid, block, shared_bytes, (cudaStream_t)(stream), #__VA_ARGS__, \
                         [](const auto&... erl_emu_args) { __VA_ARGS__(erl_emu_args...); })

inline void __syncthreads() { erl_emu::syncthreads(); }
inline void __syncwarp(unsigned mask = 0xffffffffu) { erl_emu::warp_collective(erl_emu::WarpOp::Shfl, mask, 0, 0, 32); }

template <class T>
inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
  return erl_emu::from_bits<T>(
      erl_emu::warp_collective(erl_emu::WarpOp::ShflXor, mask, erl_emu::bits_of(v), lane_mask, width));
}
template <class T>
inline T __shfl_sync(unsigned mask, T v, int src_lane, int width = 32) {
  return erl_emu::from_bits<T>(
      erl_emu::warp_collective(erl_emu::WarpOp::Shfl, mask, erl_emu::bits_of(v), src_lane, width));
}
template <class T>
inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  return erl_emu::from_bits<T>(
      erl_emu::warp_collective(erl_emu::WarpOp::ShflDown, mask, erl_emu::bits_of(v), static_cast<int>(delta), width));
}
template <class T>
inline T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  return erl_emu::from_bits<T>(
      erl_emu::warp_collective(erl_emu::WarpOp::ShflUp, mask, erl_emu::bits_of(v), static_cast<int>(delta), width));
}
inline unsigned __ballot_sync(unsigned mask, int predicate) {
  return static_cast<unsigned>(
      erl_emu::warp_collective(erl_emu::WarpOp::Ballot, mask, predicate != 0 ? 1u : 0u, 0, 32));
}

// Device math the host library lacks (the IEEE-faithful forms: the backend builds without fast math).
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline float __expf(float x) { return std::exp(x); }
inline float __fdividef(float a, float b) { return a / b; }
template <class T>
inline T __ldg(const T* p) {
  return *p;
}
inline float __uint_as_float(unsigned u) { return erl_emu::from_bits<float>(u); }
inline unsigned __float_as_uint(float f) { return static_cast<unsigned>(erl_emu::bits_of(f)); }
// One host thread runs every emulated thread and switches only at barriers, so atomics are plain updates.
template <class T>
inline T atomicAdd(T* p, T v) {
  const T old = *p;
  *p = old + v;
  return old;
}
inline int __popc(unsigned x) { return __builtin_popcount(x); }
// CUDA's global integer and floating min / max (device code calls them unqualified).
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline long min(long a, long b) { return a < b ? a : b; }
inline long max(long a, long b) { return a > b ? a : b; }
