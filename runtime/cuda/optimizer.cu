// AdamW on fp32 master weights, the global-norm reduction and small vector ops.
//   g = grad * grad_scale;  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
//   p -= lr/bc1 * m / (sqrt(v)/sqrt(bc2) + eps) + lr*wd * p        (bc_i = 1 - beta_i^step; same float ops as CPU)
// sum_squares: fixed 64K-element chunks, each one block's fixed tree in double, then one block sums the chunk
// results in a fixed tree: the same bits for a given n on every run (deterministic global grad norm).
#include <cuda_bf16.h>

#include <cmath>

#include "runtime/cuda/storage.cuh"

namespace erlangshen::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kChunk = 65536;

__global__ void adamw_kernel(float* param, const float* grad, float* m, float* v, int64_t n, float b1, float b2,
                             float gs, float step_size, float inv_sqrt_bc2, float e, float decay) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const float g = grad[i] * gs;
    const float mi = b1 * m[i] + (1.0f - b1) * g;
    const float vi = b2 * v[i] + (1.0f - b2) * g * g;
    m[i] = mi;
    v[i] = vi;
    param[i] -= step_size * mi / (sqrtf(vi) * inv_sqrt_bc2 + e) + decay * param[i];
  }
}

// The same on 16-byte-aligned tensors, 4 elements per thread per step (n4 = n / 4; n % 4 == 0).
__global__ void adamw4_kernel(float4* param, const float4* grad, float4* m, float4* v, int64_t n4, float b1, float b2,
                              float gs, float step_size, float inv_sqrt_bc2, float e, float decay) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n4; i += int64_t(gridDim.x) * blockDim.x) {
    float4 p = param[i], mi = m[i], vi = v[i];
    float4 gr = grad[i];
    for (int w = 0; w < 4; ++w) {
      const float g = lane(gr, w) * gs;
      float& mw = lane(mi, w);
      float& vw = lane(vi, w);
      mw = b1 * mw + (1.0f - b1) * g;
      vw = b2 * vw + (1.0f - b2) * g * g;
      lane(p, w) -= step_size * mw / (sqrtf(vw) * inv_sqrt_bc2 + e) + decay * lane(p, w);
    }
    m[i] = mi;
    v[i] = vi;
    param[i] = p;
  }
}

__global__ void sum_squares_chunks_kernel(double* partial, const float* x, int64_t n) {
  __shared__ double smem[32];
  const int64_t begin = blockIdx.x * kChunk;
  const int64_t end = begin + kChunk < n ? begin + kChunk : n;
  double s = 0.0;
  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) s += static_cast<double>(x[i]) * x[i];
  s = block_sum(s, smem);
  if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

__global__ void sum_squares_finish_kernel(double* result, const double* partial, int64_t chunks) {
  __shared__ double smem[32];
  double s = 0.0;
  for (int64_t i = threadIdx.x; i < chunks; i += blockDim.x) s += partial[i];
  s = block_sum(s, smem);
  if (threadIdx.x == 0) *result = s;
}

__global__ void scale_kernel(float* x, int64_t n, float f) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    x[i] *= f;
}
__global__ void fill_kernel(float* x, int64_t n, float value) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    x[i] = value;
}
__global__ void add_kernel(float* y, const float* x, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    y[i] += x[i];
}
__global__ void to_bf16_kernel(__nv_bfloat16* dst, const float* src, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    dst[i] = __float2bfloat16_rn(src[i]);
}
// The same on 16-byte-aligned src and dst, 8 elements per thread per step (two 16-byte loads, one 16-byte store):
// GEMM operand staging is memory-bound, so the access width matters. n8 = n / 8 groups; the tail goes scalar.
__global__ void to_bf16_x8_kernel(uint4* dst, const float4* src, int64_t n8) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n8; i += int64_t(gridDim.x) * blockDim.x) {
    const float4 a = src[2 * i], b = src[2 * i + 1];
    const __nv_bfloat162 p0 = __floats2bfloat162_rn(a.x, a.y), p1 = __floats2bfloat162_rn(a.z, a.w),
                         p2 = __floats2bfloat162_rn(b.x, b.y), p3 = __floats2bfloat162_rn(b.z, b.w);
    uint4 out;
    out.x = *reinterpret_cast<const uint32_t*>(&p0);
    out.y = *reinterpret_cast<const uint32_t*>(&p1);
    out.z = *reinterpret_cast<const uint32_t*>(&p2);
    out.w = *reinterpret_cast<const uint32_t*>(&p3);
    dst[i] = out;
  }
}
__global__ void from_bf16_kernel(float* dst, const __nv_bfloat16* src, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    dst[i] = __bfloat162float(src[i]);
}

}  // namespace

void adamw_update(Launch l, float* param, const float* grad, float* m, float* v, int64_t n, double lr, double beta1,
                  double beta2, double eps, double weight_decay, int64_t step, double grad_scale) {
  if (n <= 0) return;
  const double bc1 = 1.0 - std::pow(beta1, static_cast<double>(step));
  const double bc2 = 1.0 - std::pow(beta2, static_cast<double>(step));
  if (n % 4 == 0 && aligned16(param) && aligned16(grad) && aligned16(m) && aligned16(v))
    ERL_KERNEL(grid_for(n / 4, kThreads), kThreads, 0, stream_of(l), adamw4_kernel)(
        reinterpret_cast<float4*>(param), reinterpret_cast<const float4*>(grad), reinterpret_cast<float4*>(m),
        reinterpret_cast<float4*>(v), n / 4, float(beta1), float(beta2), float(grad_scale), float(lr / bc1),
        float(1.0 / std::sqrt(bc2)), float(eps), float(lr * weight_decay));
  else
    ERL_KERNEL(grid_for(n, kThreads), kThreads, 0, stream_of(l), adamw_kernel)(
        param, grad, m, v, n, float(beta1), float(beta2), float(grad_scale), float(lr / bc1),
        float(1.0 / std::sqrt(bc2)), float(eps), float(lr * weight_decay));
  ERL_CUDA_LAUNCHED();
}

double sum_squares(Launch l, const float* x, int64_t n) {
  if (n <= 0) return 0.0;
  Context& ctx = need_context(l, "sum_squares");
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  double* partial = static_cast<double*>(ctx.scratch(sizeof(double) * (chunks + 1), "sum_squares"));
  ERL_CHECK(chunks < (int64_t(1) << 31), "sum_squares: vector too long (" << n << ")");
  ERL_KERNEL(static_cast<unsigned>(chunks), kThreads, 0, stream_of(l), sum_squares_chunks_kernel)(partial, x, n);
  ERL_CUDA_LAUNCHED();
  ERL_KERNEL(1, 1024, 0, stream_of(l), sum_squares_finish_kernel)(partial + chunks, partial, chunks);
  ERL_CUDA_LAUNCHED();
  double result = 0.0;
  ERL_CUDA_CHECK(cudaMemcpyAsync(&result, partial + chunks, sizeof(double), cudaMemcpyDeviceToHost, stream_of(l)));
  ERL_CUDA_CHECK(cudaStreamSynchronize(stream_of(l)));
  return result;
}

void scale(Launch l, float* x, int64_t n, double s) {
  if (n <= 0) return;
  ERL_KERNEL(grid_for(n, kThreads), kThreads, 0, stream_of(l), scale_kernel)(x, n, float(s));
  ERL_CUDA_LAUNCHED();
}

void fill(Launch l, float* x, int64_t n, float value) {
  if (n <= 0) return;
  ERL_KERNEL(grid_for(n, kThreads), kThreads, 0, stream_of(l), fill_kernel)(x, n, value);
  ERL_CUDA_LAUNCHED();
}

void add_inplace(Launch l, float* y, const float* x, int64_t n) {
  if (n <= 0) return;
  ERL_KERNEL(grid_for(n, kThreads), kThreads, 0, stream_of(l), add_kernel)(y, x, n);
  ERL_CUDA_LAUNCHED();
}

void float_to_bf16(Launch l, uint16_t* dst, const float* src, int64_t n) {
  if (n <= 0) return;
  int64_t done = 0;
  if (aligned16(dst) && aligned16(src) && n >= 8) {
    const int64_t n8 = n / 8;
    ERL_KERNEL(grid_for(n8, kThreads), kThreads, 0, stream_of(l), to_bf16_x8_kernel)(reinterpret_cast<uint4*>(dst),
                                                                            reinterpret_cast<const float4*>(src), n8);
    ERL_CUDA_LAUNCHED();
    done = 8 * n8;
  }
  if (done == n) return;
  ERL_KERNEL(grid_for(n - done, kThreads), kThreads, 0, stream_of(l), to_bf16_kernel)(
      reinterpret_cast<__nv_bfloat16*>(dst) + done, src + done, n - done);
  ERL_CUDA_LAUNCHED();
}

void bf16_to_float(Launch l, float* dst, const uint16_t* src, int64_t n) {
  if (n <= 0) return;
  ERL_KERNEL(grid_for(n, kThreads), kThreads, 0, stream_of(l), from_bf16_kernel)(dst, reinterpret_cast<const __nv_bfloat16*>(src),
                                                                         n);
  ERL_CUDA_LAUNCHED();
}

}  // namespace erlangshen::cuda
