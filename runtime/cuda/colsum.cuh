// Deterministic column sums  dst[c] += sum_{n < N} f(n, c)  in two stages with a fixed partition:
//   stage 1: rows split into R chunks of `rows_per_chunk` (a function of N only); block (32 columns x 8 row
//            lanes) sums its chunk, lanes combined in lane order -> partial[r][c] (Context scratch)
//   stage 2: dst[c] += sum_r partial[r][c] in r order.
// Used for bias gradients, LayerNorm weight/bias gradients and token-type embedding gradients. No atomics.
// A summand type with `float4 at4(n, c)` (4 columns at once) and `bool vec4_ok(C)` takes the 4-column kernel where
// vec4_ok: each thread sums 4 adjacent columns with one load per row, in the same order, so the same bits.
// Either kernel evaluates f exactly once per (n, c), so f may also write the element it returns (bias_gelu_backward
// stores dpre that way and sums it in the same pass).
#include <type_traits>

#pragma once
#include "runtime/cuda/storage.cuh"

namespace erlangshen::cuda {

template <class F>
__global__ void colsum_partial_kernel(float* partial, int N, int C, int rows_per_chunk, F f) {
  __shared__ float lanes[8][33];
  const int c = blockIdx.x * 32 + threadIdx.x;
  const int n0 = blockIdx.y * rows_per_chunk;
  const int n1 = min(N, n0 + rows_per_chunk);
  float s = 0.0f;
  if (c < C)
    for (int n = n0 + threadIdx.y; n < n1; n += 8) s += f(n, c);
  lanes[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y == 0 && c < C) {
    float t = 0.0f;
    for (int y = 0; y < 8; ++y) t += lanes[y][threadIdx.x];
    partial[static_cast<int64_t>(blockIdx.y) * C + c] = t;
  }
}

// Thread (x, 0) of a (32 x 8) block: the 8 row lanes' sums of its 4 columns, added in lane order, stored at dst.
__device__ inline void store_lane_sums4(const float4 (&lanes)[8][32], float* dst) {
  float4 t = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  for (int y = 0; y < 8; ++y) {
    const float4 v = lanes[y][threadIdx.x];
    t.x += v.x, t.y += v.y, t.z += v.z, t.w += v.w;
  }
  store4(dst, t);
}

// The same partition, thread (x, y) on columns 4 (blockIdx.x * 32 + x) .. +3.
template <class F>
__global__ void colsum_partial4_kernel(float* partial, int N, int C, int rows_per_chunk, F f) {
  __shared__ float4 lanes[8][32];
  const int c = (blockIdx.x * 32 + threadIdx.x) * 4;
  const int n0 = blockIdx.y * rows_per_chunk;
  const int n1 = min(N, n0 + rows_per_chunk);
  float4 s = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  if (c < C)
    for (int n = n0 + threadIdx.y; n < n1; n += 8) {
      const float4 v = f.at4(n, c);
      s.x += v.x, s.y += v.y, s.z += v.z, s.w += v.w;
    }
  lanes[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y == 0 && c < C) store_lane_sums4(lanes, partial + static_cast<int64_t>(blockIdx.y) * C + c);
}

template <class F, class = void>
struct HasAt4 : std::false_type {};
template <class F>
struct HasAt4<F, std::void_t<decltype(&F::at4)>> : std::true_type {};

__global__ inline void colsum_finish_kernel(float* dst, const float* partial, int R, int C) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= C) return;
  float t = 0.0f;
  for (int r = 0; r < R; ++r) t += partial[static_cast<int64_t>(r) * C + c];
  dst[c] += t;
}

// The partition: rows per chunk, a function of N only.
inline int colsum_rows_per_chunk(int N) { return N <= 64 * 128 ? 64 : (N + 127) / 128; }

template <class F>
void colsum_add(const Launch& l, const char* op, float* dst, int N, int C, F f) {
  if (N <= 0 || C <= 0) return;
  Context& ctx = need_context(l, op);
  const int rows_per_chunk = colsum_rows_per_chunk(N);
  const int R = (N + rows_per_chunk - 1) / rows_per_chunk;
  float* partial = static_cast<float*>(ctx.scratch(sizeof(float) * static_cast<size_t>(R) * C, op));
  const dim3 block(32, 8);
  bool done = false;
  if constexpr (HasAt4<F>::value) {
    if (C % 4 == 0 && aligned4(partial) && f.vec4_ok()) {
      ERL_KERNEL(dim3((C / 4 + 31) / 32, R), block, 0, stream_of(l), colsum_partial4_kernel)(partial, N, C,
                                                                                              rows_per_chunk, f);
      done = true;
    }
  }
  if (!done)
    ERL_KERNEL(dim3((C + 31) / 32, R), block, 0, stream_of(l), colsum_partial_kernel)(partial, N, C, rows_per_chunk, f);
  ERL_CUDA_LAUNCHED();
  ERL_KERNEL((C + 255) / 256, 256, 0, stream_of(l), colsum_finish_kernel)(dst, partial, R, C);
  ERL_CUDA_LAUNCHED();
}

// f(n, c) = x[n * C + c], x stored fp32 or bf16 (read exactly: a bias gradient sums the gradient as stored)
template <class T>
struct RowsOfT {
  const T* x;
  int C;
  __device__ float operator()(int n, int c) const { return to_f32(x[static_cast<int64_t>(n) * C + c]); }
  __device__ float4 at4(int n, int c) const { return load4(x + static_cast<int64_t>(n) * C + c); }
  bool vec4_ok() const { return aligned4(x); }  // with C % 4 == 0, every row is aligned too
};
using RowsOf = RowsOfT<float>;
template <class T>
RowsOfT<T> rows_of(const T* x, int C) {
  return RowsOfT<T>{x, C};
}

}  // namespace erlangshen::cuda
