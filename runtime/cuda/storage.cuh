// fp32 or bf16 storage of a tensor (runtime/act.h) in the CUDA backend. On the device, bf16 is __nv_bfloat16 (the
// same 2 bytes as erlangshen::bf16): a load widens it exactly, a store rounds once to nearest even. Kernels
// templated on their storage types read and write through to_f32 / from_f32, so their fp32 instantiation is the
// plain fp32 kernel. On the host: an Act's data as the device type, and the Context check of the bf16-storage ops.
#pragma once
#include <cuda_bf16.h>
#include <library_types.h>

#include <cstdint>
#include <type_traits>

#include "runtime/act.h"
#include "runtime/cuda/common.cuh"

namespace erlangshen::cuda {

__device__ __forceinline__ float to_f32(float x) { return x; }
__device__ __forceinline__ float to_f32(__nv_bfloat16 x) { return __bfloat162float(x); }

template <class T>
__device__ __forceinline__ T from_f32(float x);
template <>
__device__ __forceinline__ float from_f32<float>(float x) {
  return x;
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float x) {
  return __float2bfloat16_rn(x);
}

// Four consecutive elements as fp32, in one access: 16 bytes of fp32 or 8 of bf16 (a bf16 load widens exactly, a
// bf16 store rounds each value once to nearest even, as from_f32). p must be aligned to 4 elements (aligned4).
__device__ __forceinline__ float4 load4(const float* p) { return *reinterpret_cast<const float4*>(p); }
__device__ __forceinline__ float4 load4(const __nv_bfloat16* p) {
  const uint2 u = *reinterpret_cast<const uint2*>(p);
  const float2 lo = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&u.x));
  const float2 hi = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&u.y));
  return make_float4(lo.x, lo.y, hi.x, hi.y);
}
__device__ __forceinline__ void store4(float* p, float4 v) { *reinterpret_cast<float4*>(p) = v; }
__device__ __forceinline__ void store4(__nv_bfloat16* p, float4 v) {
  const __nv_bfloat162 lo = __floats2bfloat162_rn(v.x, v.y), hi = __floats2bfloat162_rn(v.z, v.w);
  uint2 u;
  u.x = *reinterpret_cast<const uint32_t*>(&lo);
  u.y = *reinterpret_cast<const uint32_t*>(&hi);
  *reinterpret_cast<uint2*>(p) = u;
}
// v as a tensor of T stores it, widened back to fp32 (bf16: rounded once to nearest even; fp32: v itself).
template <class T>
__device__ __forceinline__ float as_stored(float v) {
  return to_f32(from_f32<T>(v));
}
template <class T>
__device__ __forceinline__ float4 as_stored4(float4 v) {
  return make_float4(as_stored<T>(v.x), as_stored<T>(v.y), as_stored<T>(v.z), as_stored<T>(v.w));
}
// Element w (0..3) of a float4.
__device__ __forceinline__ float& lane(float4& v, int w) { return (&v.x)[w]; }

// Whether p (nullptr included) can be read or written 4 elements at a time.
template <class T>
bool aligned4(const T* p) {
  return reinterpret_cast<uintptr_t>(p) % (4 * sizeof(T)) == 0;
}

inline __nv_bfloat16* device_bf16(bf16* p) { return reinterpret_cast<__nv_bfloat16*>(p); }
inline const __nv_bfloat16* device_bf16(const bf16* p) { return reinterpret_cast<const __nv_bfloat16*>(p); }

// f(p) with p the Act's data as the kernels' type: float* or __nv_bfloat16* (const for Act<const float>).
template <class T, class F>
void visit(Act<T> a, F&& f) {
  if (a.is_bf16()) f(device_bf16(a.h));
  else f(a.f);
}

// The Act's data and its cuBLASLt element type (for GemmArgs).
template <class T>
auto data_of(Act<T> a) {
  using Ptr = std::conditional_t<std::is_const_v<T>, const void*, void*>;
  return a.is_bf16() ? static_cast<Ptr>(a.h) : static_cast<Ptr>(a.f);
}
template <class T>
cudaDataType_t type_of(Act<T> a) {
  return a.is_bf16() ? CUDA_R_16BF : CUDA_R_32F;
}

// The bf16 GEMM operand of a tensor: its own bf16 storage, or its fp32 values rounded (to nearest even) into
// `slot` (n elements).
inline const __nv_bfloat16* bf16_operand(const Launch& l, Act<const float> a, uint16_t* slot, int64_t n) {
  if (a.is_bf16()) return device_bf16(a.h);
  float_to_bf16(l, slot, a.f, n);
  return reinterpret_cast<const __nv_bfloat16*>(slot);
}

inline bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// The Context of an op on bf16 storage: its semantics (every GEMM operand in bf16) are MathMode::BF16's.
inline Context& need_bf16_storage_context(const Launch& l, const char* op) {
  Context& ctx = need_context(l, op);
  ERL_CHECK(ctx.math() == MathMode::BF16, "cuda::" << op << ": bf16 activation storage needs MathMode::BF16 (this "
                                                   "Context computes in " << math_mode_name(ctx.math()) << ")");
  return ctx;
}

}  // namespace erlangshen::cuda
