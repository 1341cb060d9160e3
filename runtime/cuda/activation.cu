// Fused bias + GeLU, and tanh (pooler). Element-wise; the bias gradient is a deterministic column sum.
//   tanh GeLU:  g(x) = 0.5 x (1 + tanh(u)),  u = k (x + 0.044715 x^3),  k = sqrt(2/pi)
//               g'(x) = 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) k (1 + 3 * 0.044715 x^2)
//   exact GeLU: g(x) = x Phi(x),  g'(x) = Phi(x) + x phi(x)
// bf16 storage (runtime/act.h): the backward kernel reads dact / pre and writes dpre in fp32 or bf16; the math is
// the same fp32, a bf16 dpre is rounded once and the bias gradient sums it as stored.

#include "runtime/cuda/activation.cuh"
#include "runtime/cuda/colsum.cuh"

namespace erlangshen::cuda {
namespace {

constexpr int kThreads = 256;

// dpre[i] = dact[i] * g'(pre[i])  (N*C elements; each tensor fp32 or bf16: read exactly, fp32 math, dpre rounded
// once when bf16; dpre may be dact itself, same storage). store1 / store4 write element i (i .. i+3: aligned to 4
// elements) and return the values as stored. As a column-sum summand (operator(), at4; colsum.cuh evaluates each
// (n, c) once) the bias gradient sums dpre as stored in the same pass that writes it, in colsum_add's partition and
// order: the same bits as the element-wise kernels followed by colsum_add(rows_of(dpre)), without re-reading dpre.
template <class TD, class TA, class TP>
struct StoredDgelu {
  TD* dpre;
  const TA* dact;
  const TP* pre;
  int C;
  bool tanh_kind;
  __device__ float grad(float x) const { return tanh_kind ? gelu_tanh_grad(x) : gelu_exact_grad(x); }
  __device__ float store1(int64_t i) const {
    const TD v = from_f32<TD>(to_f32(dact[i]) * grad(to_f32(pre[i])));
    dpre[i] = v;
    return to_f32(v);
  }
  __device__ float4 store4(int64_t i) const {
    const float4 x = load4(pre + i);
    float4 d = load4(dact + i);
    d.x *= grad(x.x), d.y *= grad(x.y), d.z *= grad(x.z), d.w *= grad(x.w);
    cuda::store4(dpre + i, d);
    return as_stored4<TD>(d);
  }
  __device__ float operator()(int n, int c) const { return store1(static_cast<int64_t>(n) * C + c); }
  __device__ float4 at4(int n, int c) const { return store4(static_cast<int64_t>(n) * C + c); }
  bool vec4_ok() const { return aligned4(dpre) && aligned4(dact) && aligned4(pre); }
};

// Without a bias gradient: f over all elements, one at a time or (vec4) 4 at a time (groups = total / 4).
template <class F>
__global__ void bias_gelu_backward_kernel(F f, int64_t total) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x)
    f.store1(i);
}
template <class F>
__global__ void bias_gelu_backward4_kernel(F f, int64_t groups) {
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < groups; t += int64_t(gridDim.x) * blockDim.x)
    f.store4(4 * t);
}

// dpre, and with dbias set dbias (C) += sum_n dpre as stored in the same pass (deterministic column sum).
template <class TD, class TA, class TP>
void bias_gelu_backward_on(const Launch& l, TD* dpre, float* dbias, const TA* dact, const TP* pre, int N, int C,
                           Activation kind) {
  const int64_t total = int64_t(N) * C;
  if (total == 0) return;
  const StoredDgelu<TD, TA, TP> f{dpre, dact, pre, C, kind == Activation::GeluTanh};
  if (dbias) return colsum_add(l, "bias_gelu_backward", dbias, N, C, f);  // one pass: dpre written and summed
  if (total % 4 == 0 && f.vec4_ok())
    ERL_KERNEL(grid_for(total / 4, kThreads), kThreads, 0, stream_of(l), bias_gelu_backward4_kernel)(f, total / 4);
  else
    ERL_KERNEL(grid_for(total, kThreads), kThreads, 0, stream_of(l), bias_gelu_backward_kernel)(f, total);
  ERL_CUDA_LAUNCHED();
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
  // pre is both the input x and the output: pre = pre + bias, act = gelu(pre), in place
  ERL_KERNEL(grid_for(total, kThreads), kThreads, 0, stream_of(l), bias_gelu_store_kernel)(act, pre, pre, bias, total, C,
                                                                                   kind == Activation::GeluTanh);
  ERL_CUDA_LAUNCHED();
}

void bias_gelu_backward(Launch l, float* dpre, float* dbias, const float* dact, const float* pre, int N, int C,
                        Activation kind) {
  bias_gelu_backward_on(l, dpre, dbias, dact, pre, N, C, kind);
}

void bias_gelu_backward(Launch l, Act<float> dpre, float* dbias, Act<const float> dact, Act<const float> pre, int N,
                        int C, Activation kind) {
  need_bf16_storage_context(l, "bias_gelu_backward");
  ERL_CHECK(!dpre.empty() && !dact.empty() && !pre.empty(), "cuda::bias_gelu_backward: dpre, dact, pre required");
  ERL_CHECK(data_of(Act<const float>(dpre)) != data_of(dact) || dpre.is_bf16() == dact.is_bf16(),
            "cuda::bias_gelu_backward: dpre may alias dact only with the same storage");
  visit(dpre, [&](auto* dp) {
    visit(dact, [&](auto* da) {
      visit(pre, [&](auto* p) { bias_gelu_backward_on(l, dp, dbias, da, p, N, C, kind); });
    });
  });
}

void tanh_forward(Launch l, float* out, const float* inp, int64_t n) {
  if (n == 0) return;
  ERL_KERNEL(grid_for(n, kThreads), kThreads, 0, stream_of(l), tanh_forward_kernel)(out, inp, n);
  ERL_CUDA_LAUNCHED();
}

void tanh_backward(Launch l, float* dinp, const float* dout, const float* out, int64_t n) {
  if (n == 0) return;
  ERL_KERNEL(grid_for(n, kThreads), kThreads, 0, stream_of(l), tanh_backward_kernel)(dinp, dout, out, n);
  ERL_CUDA_LAUNCHED();
}

}  // namespace erlangshen::cuda
