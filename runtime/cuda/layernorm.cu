// LayerNorm over the last axis (C), one block per row:
//   y = (x - mean) * rstd * w + b,  rstd = 1 / sqrt(var + eps)   (statistics in double, two passes, like the CPU)
//   y stored fp32, or bf16 (runtime/act.h: the same fp32 y rounded once)
// Backward (xhat = (x - mean) * rstd, g = dy * w), rows independent:
//   dx += rstd * (g - mean(g) - xhat * mean(g * xhat))
//   dw += sum_n dy * xhat;  db += sum_n dy      (deterministic two-stage column sums)
#include "runtime/cuda/colsum.cuh"

namespace erlangshen::cuda {
namespace {

constexpr int kThreads = 256;

// out (N, C) stored as T: fp32, or bf16 (y rounded once; mean / rstd fp32 either way).
template <class T>
__global__ void layernorm_forward_kernel(T* out, float* mean, float* rstd, const float* inp, const float* w,
                                         const float* b, int C, double eps) {
  __shared__ double smem[32];
  const int64_t row = blockIdx.x;
  const float* x = inp + row * C;
  T* y = out + row * C;
  double s = 0.0;
  for (int c = threadIdx.x; c < C; c += blockDim.x) s += x[c];
  const double m = block_sum(s, smem) / C;
  double v = 0.0;
  for (int c = threadIdx.x; c < C; c += blockDim.x) {
    const double d = x[c] - m;
    v += d * d;
  }
  const double r = 1.0 / sqrt(block_sum(v, smem) / C + eps);
  const float mt = static_cast<float>(m), rt = static_cast<float>(r);
  for (int c = threadIdx.x; c < C; c += blockDim.x) y[c] = from_f32<T>((x[c] - mt) * rt * w[c] + b[c]);
  if (threadIdx.x == 0) {
    mean[row] = mt;
    rstd[row] = rt;
  }
}

__global__ void layernorm_backward_dinp_kernel(float* dinp, const float* dout, const float* inp, const float* w,
                                               const float* mean, const float* rstd, int C) {
  __shared__ float smem[32];
  const int64_t row = blockIdx.x;
  const float* x = inp + row * C;
  const float* dy = dout + row * C;
  float* dx = dinp + row * C;
  const float m = mean[row], r = rstd[row];
  float sg = 0.0f, sgx = 0.0f;
  for (int c = threadIdx.x; c < C; c += blockDim.x) {
    const float g = dy[c] * w[c];
    sg += g;
    sgx += g * (x[c] - m) * r;
  }
  const float mg = block_sum(sg, smem) / C;
  const float mgx = block_sum(sgx, smem) / C;
  for (int c = threadIdx.x; c < C; c += blockDim.x) {
    const float xhat = (x[c] - m) * r;
    dx[c] += r * (dy[c] * w[c] - mg - xhat * mgx);
  }
}

// f(n, c) = dy[n, c] * xhat[n, c]
struct DyXhat {
  const float *dy, *x, *mean, *rstd;
  int C;
  __device__ float operator()(int n, int c) const {
    const int64_t i = static_cast<int64_t>(n) * C + c;
    return dy[i] * (x[i] - mean[n]) * rstd[n];
  }
};

}  // namespace

void layernorm_forward(Launch l, float* out, float* mean, float* rstd, const float* inp, const float* weight,
                       const float* bias, int N, int C, double eps) {
  if (N <= 0) return;
  ERL_KERNEL(N, kThreads, 0, stream_of(l), layernorm_forward_kernel)(out, mean, rstd, inp, weight, bias, C, eps);
  ERL_CUDA_LAUNCHED();
}

void layernorm_backward(Launch l, float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                        const float* weight, const float* mean, const float* rstd, int N, int C) {
  if (N <= 0) return;
  ERL_KERNEL(N, kThreads, 0, stream_of(l), layernorm_backward_dinp_kernel)(dinp, dout, inp, weight, mean, rstd, C);
  ERL_CUDA_LAUNCHED();
  if (dweight) colsum_add(l, "layernorm_backward", dweight, N, C, DyXhat{dout, inp, mean, rstd, C});
  if (dbias) colsum_add(l, "layernorm_backward", dbias, N, C, RowsOf{dout, C});
}

void layernorm_forward(Launch l, bf16* out, float* mean, float* rstd, const float* inp, const float* weight,
                       const float* bias, int N, int C, double eps) {
  need_bf16_storage_context(l, "layernorm_forward");
  if (N <= 0) return;
  ERL_KERNEL(N, kThreads, 0, stream_of(l), layernorm_forward_kernel)(device_bf16(out), mean, rstd, inp, weight, bias, C, eps);
  ERL_CUDA_LAUNCHED();
}

}  // namespace erlangshen::cuda
