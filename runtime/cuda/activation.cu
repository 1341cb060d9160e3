// Fused bias + GeLU, and tanh (pooler). Element-wise; the bias gradient is a deterministic column sum.
//   tanh GeLU:  g(x) = 0.5 x (1 + tanh(u)),  u = k (x + 0.044715 x^3),  k = sqrt(2/pi)
//               g'(x) = 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) k (1 + 3 * 0.044715 x^2)
//   exact GeLU: g(x) = x Phi(x),  g'(x) = Phi(x) + x phi(x)
#include "runtime/cuda/activation.cuh"
#include "runtime/cuda/colsum.cuh"

namespace erlangshen::cuda {
namespace {

constexpr int kThreads = 256;

__global__ void bias_gelu_forward_kernel(float* act, float* pre, const float* bias, int64_t total, int C, bool tanh_kind) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const float x = bias ? pre[i] + bias[i % C] : pre[i];
    pre[i] = x;
    act[i] = tanh_kind ? gelu_tanh(x) : gelu_exact(x);
  }
}

__global__ void bias_gelu_backward_kernel(float* dpre, const float* dact, const float* pre, int64_t total, bool tanh_kind) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const float x = pre[i];
    dpre[i] = dact[i] * (tanh_kind ? gelu_tanh_grad(x) : gelu_exact_grad(x));
  }
}

__global__ void tanh_forward_kernel(float* out, const float* inp, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = tanhf(inp[i]);
}

__global__ void tanh_backward_kernel(float* dinp, const float* dout, const float* out, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    dinp[i] = dout[i] * (1.0f - out[i] * out[i]);
}

}  // namespace

void bias_gelu_forward(Launch l, float* act, float* pre, const float* bias, int N, int C, Activation kind) {
  const int64_t total = int64_t(N) * C;
  if (total == 0) return;
  bias_gelu_forward_kernel<<<grid_for(total, kThreads), kThreads, 0, stream_of(l)>>>(act, pre, bias, total, C,
                                                                                     kind == Activation::GeluTanh);
  ERL_CUDA_LAUNCHED();
}

void bias_gelu_backward(Launch l, float* dpre, float* dbias, const float* dact, const float* pre, int N, int C,
                        Activation kind) {
  const int64_t total = int64_t(N) * C;
  if (total == 0) return;
  bias_gelu_backward_kernel<<<grid_for(total, kThreads), kThreads, 0, stream_of(l)>>>(dpre, dact, pre, total,
                                                                                      kind == Activation::GeluTanh);
  ERL_CUDA_LAUNCHED();
  if (dbias) colsum_add(l, "bias_gelu_backward", dbias, N, C, RowsOf{dpre, C});
}

void tanh_forward(Launch l, float* out, const float* inp, int64_t n) {
  if (n == 0) return;
  tanh_forward_kernel<<<grid_for(n, kThreads), kThreads, 0, stream_of(l)>>>(out, inp, n);
  ERL_CUDA_LAUNCHED();
}

void tanh_backward(Launch l, float* dinp, const float* dout, const float* out, int64_t n) {
  if (n == 0) return;
  tanh_backward_kernel<<<grid_for(n, kThreads), kThreads, 0, stream_of(l)>>>(dinp, dout, out, n);
  ERL_CUDA_LAUNCHED();
}

}  // namespace erlangshen::cuda
