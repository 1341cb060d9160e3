// Dropout (+ residual) with masks drawn from Philox by global element index (runtime/philox.h), the same rule
// as the CPU backend, so masks agree bit for bit and none is stored:
//   keep(j) = philox(key, j / 4)[j % 4] >= p * 2^32,  j = index_offset + i;   kept values scaled by 1 / (1 - p)
// One thread per aligned group of 4 global indices: one Philox block serves 4 elements. Where the local elements
// line up with those groups (index_offset % 4 == 0, n % 4 == 0, tensors aligned to 4 elements) each tensor is read
// and written 4 elements at a time (the *4 kernels; the same arithmetic), else element by element.
#include <initializer_list>
#include <type_traits>

#include "runtime/cuda/dropout.cuh"
#include "runtime/cuda/storage.cuh"

namespace erlangshen::cuda {
namespace {

constexpr int kThreads = 256;

// Calls fn(i, keep) for the local elements i of global group `group` (indices 4*group .. 4*group+3).
template <class Fn>
__device__ __forceinline__ void for_group(int64_t group, int64_t offset, int64_t n, PhiloxKey key, uint32_t threshold,
                                          Fn fn) {
  const Philox4 r = philox_at(key, static_cast<uint64_t>(group));
#pragma unroll
  for (int w = 0; w < 4; ++w) {
    const int64_t i = group * 4 + w - offset;
    if (i >= 0 && i < n) fn(i, r.v[w] >= threshold);
  }
}

// x stored as TX: fp32, or bf16 (bf16 activation storage: read exactly); the residual stream out and resid as TS
// (fp32, or bf16 under train.residual=bf16: resid read exactly, out rounded once).
template <class TS, class TX>
__global__ void dropout_residual_kernel(TS* out, const TS* resid, const TX* x, int64_t n, PhiloxKey key,
                                        uint32_t threshold, float scale, int64_t offset, int64_t groups) {
  const int64_t g0 = offset >> 2;
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < groups; t += int64_t(gridDim.x) * blockDim.x)
    for_group(g0 + t, offset, n, key, threshold, [&](int64_t i, bool keep) {
      const float r = resid ? to_f32(resid[i]) : 0.0f;
      out[i] = from_f32<TS>(r + (keep ? to_f32(x[i]) * scale : 0.0f));
    });
}

// dx stored as TD: fp32, or bf16 (bf16 activation storage: the fp32 value rounded once); dout as TO (fp32, or a
// bf16 residual gradient, read exactly).
template <class TD, class TO>
__global__ void dropout_backward_kernel(TD* dx, const TO* dout, int64_t n, PhiloxKey key, uint32_t threshold,
                                        float scale, int64_t offset, int64_t groups) {
  const int64_t g0 = offset >> 2;
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < groups; t += int64_t(gridDim.x) * blockDim.x)
    for_group(g0 + t, offset, n, key, threshold,
              [&](int64_t i, bool keep) { dx[i] = from_f32<TD>(keep ? to_f32(dout[i]) * scale : 0.0f); });
}

// The aligned case: group g0 + t is local elements 4t .. 4t+3.
template <class TS, class TX>
__global__ void dropout_residual4_kernel(TS* out, const TS* resid, const TX* x, int64_t groups, PhiloxKey key,
                                         uint32_t threshold, float scale, int64_t g0) {
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < groups; t += int64_t(gridDim.x) * blockDim.x) {
    const float4 v = dropped4(load4(x + 4 * t), philox_at(key, static_cast<uint64_t>(g0 + t)), threshold, scale);
    float4 o = resid ? load4(resid + 4 * t) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    o.x = o.x + v.x, o.y = o.y + v.y, o.z = o.z + v.z, o.w = o.w + v.w;
    store4(out + 4 * t, o);
  }
}

template <class TD, class TO>
__global__ void dropout_backward4_kernel(TD* dx, const TO* dout, int64_t groups, PhiloxKey key, uint32_t threshold,
                                         float scale, int64_t g0) {
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < groups; t += int64_t(gridDim.x) * blockDim.x) {
    store4(dx + 4 * t, dropped4(load4(dout + 4 * t), philox_at(key, static_cast<uint64_t>(g0 + t)), threshold, scale));
  }
}

// Whether the local elements line up with the Philox groups and every tensor can be accessed 4 at a time.
bool groups_aligned(int64_t offset, int64_t n, std::initializer_list<const void*> tensors) {
  if (offset % 4 != 0 || n % 4 != 0) return false;
  for (const void* p : tensors)
    if (!aligned16(p)) return false;
  return true;
}

template <class TS, class TX>
__global__ void residual_add_kernel(TS* out, const TS* resid, const TX* x, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = from_f32<TS>((resid ? to_f32(resid[i]) : 0.0f) + to_f32(x[i]));
}

int64_t group_count(int64_t offset, int64_t n) { return ((offset + n + 3) >> 2) - (offset >> 2); }

// The launches behind the entry points below, for x / dx stored as TX / TD and out / resid as TS (fp32 or bf16).
template <class TS, class TX>
void dropout_residual_from(const Launch& l, TS* out, const TS* resid, const TX* x, int64_t n,
                           const DropoutSpec& d, int64_t index_offset) {
  if (n <= 0) return;
  if (d.p <= 0.0f) {
    ERL_KERNEL(grid_for(n, kThreads), kThreads, 0, stream_of(l), residual_add_kernel)(out, resid, x, n);
  } else if (groups_aligned(index_offset, n, {out, resid, x})) {
    ERL_KERNEL(grid_for(n / 4, kThreads), kThreads, 0, stream_of(l), dropout_residual4_kernel)(
        out, resid, x, n / 4, d.key, dropout_threshold(d.p), 1.0f / (1.0f - d.p), index_offset / 4);
  } else {
    const int64_t groups = group_count(index_offset, n);
    const float scale = 1.0f / (1.0f - d.p);
    ERL_KERNEL(grid_for(groups, kThreads), kThreads, 0, stream_of(l), dropout_residual_kernel)(
        out, resid, x, n, d.key, dropout_threshold(d.p), scale, index_offset, groups);
  }
  ERL_CUDA_LAUNCHED();
}

template <class TD, class TO>
void dropout_backward_into(const Launch& l, TD* dx, const TO* dout, int64_t n, const DropoutSpec& d,
                           int64_t index_offset) {
  const int64_t groups = group_count(index_offset, n);
  const float scale = 1.0f / (1.0f - d.p);
  if (groups_aligned(index_offset, n, {dx, dout})) {
    ERL_KERNEL(grid_for(n / 4, kThreads), kThreads, 0, stream_of(l), dropout_backward4_kernel)(
        dx, dout, n / 4, d.key, dropout_threshold(d.p), scale, index_offset / 4);
    ERL_CUDA_LAUNCHED();
    return;
  }
  ERL_KERNEL(grid_for(groups, kThreads), kThreads, 0, stream_of(l), dropout_backward_kernel)(
      dx, dout, n, d.key, dropout_threshold(d.p), scale, index_offset, groups);
  ERL_CUDA_LAUNCHED();
}

}  // namespace

void dropout_residual_forward(Launch l, float* out, const float* resid, const float* x, int64_t n,
                              const DropoutSpec& d, int64_t index_offset) {
  dropout_residual_from(l, out, resid, x, n, d, index_offset);
}

void dropout_residual_forward(Launch l, Act<float> out, Act<const float> resid, Act<const float> x, int64_t n,
                              const DropoutSpec& d, int64_t index_offset) {
  ERL_CHECK(resid.empty() || resid.is_bf16() == out.is_bf16(),
            "cuda::dropout_residual_forward: resid and out are the residual stream: one storage for both");
  if (out.is_bf16() || x.is_bf16()) need_bf16_storage_context(l, "dropout_residual_forward");
  visit(out, [&](auto* o) {
    using TS = std::remove_pointer_t<decltype(o)>;
    const TS* r = nullptr;
    if constexpr (std::is_same_v<TS, float>) r = resid.f;
    else r = device_bf16(resid.h);
    visit(x, [&](const auto* in) { dropout_residual_from(l, o, r, in, n, d, index_offset); });
  });
}

void dropout_backward(Launch l, Act<float> dx, Act<const float> dout, int64_t n, const DropoutSpec& d,
                      int64_t index_offset) {
  if (!dx.is_bf16() && !dout.is_bf16()) return dropout_backward(l, dx.f, dout.f, n, d, index_offset);
  need_bf16_storage_context(l, "dropout_backward");
  if (n <= 0) return;
  if (d.p <= 0.0f) {  // dx = dout, converted to dx's storage
    if (!dout.is_bf16()) return float_to_bf16(l, reinterpret_cast<uint16_t*>(dx.h), dout.f, n);
    if (!dx.is_bf16()) return bf16_to_float(l, dx.f, reinterpret_cast<const uint16_t*>(dout.h), n);
    if (dx.h != dout.h)
      ERL_CUDA_CHECK(cudaMemcpyAsync(dx.h, dout.h, sizeof(bf16) * n, cudaMemcpyDeviceToDevice, stream_of(l)));
    return;
  }
  visit(dx, [&](auto* x) {
    visit(dout, [&](const auto* g) { dropout_backward_into(l, x, g, n, d, index_offset); });
  });
}

void zero(Launch l, Act<float> a, int64_t n) {
  if (n <= 0) return;
  const size_t bytes = (a.is_bf16() ? sizeof(bf16) : sizeof(float)) * static_cast<size_t>(n);
  ERL_CUDA_CHECK(cudaMemsetAsync(a.is_bf16() ? static_cast<void*>(a.h) : static_cast<void*>(a.f), 0, bytes,
                                 stream_of(l)));
}

void dropout_backward(Launch l, float* dx, const float* dout, int64_t n, const DropoutSpec& d, int64_t index_offset) {
  if (n <= 0) return;
  if (d.p <= 0.0f) {
    if (dx != dout)
      ERL_CUDA_CHECK(cudaMemcpyAsync(dx, dout, sizeof(float) * n, cudaMemcpyDeviceToDevice, stream_of(l)));
    return;
  }
  dropout_backward_into(l, dx, dout, n, d, index_offset);
}

}  // namespace erlangshen::cuda
