// GeLU and its derivative on the device (formulas in activation.cu), and the element-wise bias (+ GeLU) stores
// shared by activation.cu, matmul.cu and gemm.cu's epilogue fallback.
#pragma once
#include <cuda_runtime.h>

#include <type_traits>

#include "runtime/cuda/storage.cuh"

namespace erlangshen::cuda {

constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kInvSqrt2 = 0.7071067811865476f;
constexpr float kInvSqrt2Pi = 0.3989422804014327f;

__device__ __forceinline__ float gelu_tanh(float x) {
  const float u = kSqrt2OverPi * (x + 0.044715f * x * x * x);
  return 0.5f * x * (1.0f + tanhf(u));
}
__device__ __forceinline__ float gelu_tanh_grad(float x) {
  const float u = kSqrt2OverPi * (x + 0.044715f * x * x * x);
  const float th = tanhf(u);
  return 0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * kSqrt2OverPi * (1.0f + float(3 * 0.044715) * x * x);
}
__device__ __forceinline__ float gelu_exact(float x) { return 0.5f * x * (1.0f + erff(x * kInvSqrt2)); }
__device__ __forceinline__ float gelu_exact_grad(float x) {
  const float cdf = 0.5f * (1.0f + erff(x * kInvSqrt2));
  return cdf + x * kInvSqrt2Pi * expf(-0.5f * x * x);
}

// The bias as a GEMM epilogue with output type T adds it: fp32 as given; with a bf16 output its bf16 value (what
// cuBLASLt's bias of D's type holds, gemm.cuh).
template <class T>
__device__ __forceinline__ float epilogue_bias(float b) {
  return std::is_same_v<T, float> ? b : __bfloat162float(__float2bfloat16_rn(b));
}

// Over a packed (rows, m) block, row-major (= a column-major m x rows GEMM result), bias (m) optional:
//   out[i] = x[i] + epilogue_bias(bias[i % m])               rounded once when T is bf16
// x may be out itself (fp32 in place).
template <class T>
__global__ void bias_store_kernel(T* out, const float* x, const float* bias, int64_t total, int m) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = from_f32<T>(bias ? x[i] + epilogue_bias<T>(bias[i % m]) : x[i]);
}

// The same block through a GeLU, bias optional:
//   v = x[i] + epilogue_bias(bias[i % m]);   pre[i] = v;   act[i] = gelu(v)   (each rounded once when T is bf16; gelu of the fp32 v)
// x may be pre itself (fp32 in place).
template <class T>
__global__ void bias_gelu_store_kernel(T* act, T* pre, const float* x, const float* bias, int64_t total, int m,
                                       bool tanh_kind) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const float v = bias ? x[i] + epilogue_bias<T>(bias[i % m]) : x[i];
    pre[i] = from_f32<T>(v);
    act[i] = from_f32<T>(tanh_kind ? gelu_tanh(v) : gelu_exact(v));
  }
}

}  // namespace erlangshen::cuda
