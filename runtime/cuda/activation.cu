// Fused bias + GeLU, and tanh (pooler). Element-wise; the bias gradient is a deterministic column sum.
//   tanh GeLU:  g(x) = 0.5 x (1 + tanh(u)),  u = k (x + 0.044715 x^3),  k = sqrt(2/pi)
//               g'(x) = 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) k (1 + 3 * 0.044715 x^2)
//   exact GeLU: g(x) = x Phi(x),  g'(x) = Phi(x) + x phi(x)
// bf16 storage (runtime/act.h): the backward kernel reads dact / pre and writes dpre in fp32 or bf16; the math is
// the same fp32, a bf16 dpre is rounded once and the bias gradient sums it as stored.
#include <type_traits>

#include "runtime/cuda/activation.cuh"
#include "runtime/cuda/colsum.cuh"

namespace erlangshen::cuda {
namespace {

constexpr int kThreads = 256;

// dpre[i] = dact[i] * g'(pre[i])  (N*C elements; each tensor fp32 or bf16: read exactly, fp32 math, dpre rounded
// once when bf16). dpre may be dact itself (same storage).
template <class TD, class TA, class TP>
__global__ void bias_gelu_backward_kernel(TD* dpre, const TA* dact, const TP* pre, int64_t total, bool tanh_kind) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const float x = to_f32(pre[i]);
    dpre[i] = from_f32<TD>(to_f32(dact[i]) * (tanh_kind ? gelu_tanh_grad(x) : gelu_exact_grad(x)));
  }
}

// The same, 4 elements at a time (total % 4 == 0, tensors aligned to 4 elements): groups = total / 4.
template <class TD, class TA, class TP>
__global__ void bias_gelu_backward4_kernel(TD* dpre, const TA* dact, const TP* pre, int64_t groups, bool tanh_kind) {
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < groups; t += int64_t(gridDim.x) * blockDim.x) {
    const float4 x = load4(pre + 4 * t);
    float4 d = load4(dact + 4 * t);
    if (tanh_kind) {
      d.x *= gelu_tanh_grad(x.x), d.y *= gelu_tanh_grad(x.y), d.z *= gelu_tanh_grad(x.z), d.w *= gelu_tanh_grad(x.w);
    } else {
      d.x *= gelu_exact_grad(x.x), d.y *= gelu_exact_grad(x.y), d.z *= gelu_exact_grad(x.z);
      d.w *= gelu_exact_grad(x.w);
    }
    store4(dpre + 4 * t, d);
  }
}

// v as a tensor of T stores it, widened back to fp32 (bf16: rounded once to nearest even).
template <class T>
__device__ __forceinline__ float4 as_stored4(float4 v) {
  if constexpr (std::is_same_v<T, float>) {
    return v;
  } else {
    return make_float4(__bfloat162float(__float2bfloat16_rn(v.x)), __bfloat162float(__float2bfloat16_rn(v.y)),
                       __bfloat162float(__float2bfloat16_rn(v.z)), __bfloat162float(__float2bfloat16_rn(v.w)));
  }
}

// The backward with the bias gradient in the same pass, on colsum.cuh's partition (block (32 x 8) over 128 columns
// and one chunk of rows, 4 columns a thread): each thread writes dpre for its elements and sums them as stored, so
// partial[r][c] is what colsum_add(rows_of(dpre)) computes, in the same order: the same bits, without re-reading dpre.
template <class TD, class TA, class TP>
__global__ void bias_gelu_backward_dbias4_kernel(float* partial, TD* dpre, const TA* dact, const TP* pre, int N, int C,
                                                 int rows_per_chunk, bool tanh_kind) {
  __shared__ float4 lanes[8][32];
  const int c = (blockIdx.x * 32 + threadIdx.x) * 4;
  const int n0 = blockIdx.y * rows_per_chunk;
  const int n1 = min(N, n0 + rows_per_chunk);
  float4 s = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  if (c < C)
    for (int n = n0 + threadIdx.y; n < n1; n += 8) {
      const int64_t i = static_cast<int64_t>(n) * C + c;
      const float4 x = load4(pre + i);
      float4 d = load4(dact + i);
      if (tanh_kind) {
        d.x *= gelu_tanh_grad(x.x), d.y *= gelu_tanh_grad(x.y), d.z *= gelu_tanh_grad(x.z);
        d.w *= gelu_tanh_grad(x.w);
      } else {
        d.x *= gelu_exact_grad(x.x), d.y *= gelu_exact_grad(x.y), d.z *= gelu_exact_grad(x.z);
        d.w *= gelu_exact_grad(x.w);
      }
      store4(dpre + i, d);
      const float4 v = as_stored4<TD>(d);
      s.x += v.x, s.y += v.y, s.z += v.z, s.w += v.w;
    }
  lanes[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y == 0 && c < C) {
    float4 t = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    for (int y = 0; y < 8; ++y) {
      const float4 v = lanes[y][threadIdx.x];
      t.x += v.x, t.y += v.y, t.z += v.z, t.w += v.w;
    }
    store4(partial + static_cast<int64_t>(blockIdx.y) * C + c, t);
  }
}

// The backward kernel, then dbias (C) += sum_n dpre as stored (deterministic column sum; [ctx] when dbias is set).
template <class TD, class TA, class TP>
void bias_gelu_backward_on(const Launch& l, TD* dpre, float* dbias, const TA* dact, const TP* pre, int N, int C,
                           Activation kind) {
  const int64_t total = int64_t(N) * C;
  if (total == 0) return;
  if (dbias && C % 4 == 0 && aligned4(dpre) && aligned4(dact) && aligned4(pre)) {
    const int rows_per_chunk = colsum_rows_per_chunk(N), R = (N + rows_per_chunk - 1) / rows_per_chunk;
    float* partial = static_cast<float*>(
        need_context(l, "bias_gelu_backward").scratch(sizeof(float) * size_t(R) * C, "bias_gelu_backward"));
    ERL_KERNEL(dim3((C / 4 + 31) / 32, R), dim3(32, 8), 0, stream_of(l), bias_gelu_backward_dbias4_kernel)(
        partial, dpre, dact, pre, N, C, rows_per_chunk, kind == Activation::GeluTanh);
    ERL_CUDA_LAUNCHED();
    ERL_KERNEL((C + 255) / 256, 256, 0, stream_of(l), colsum_finish_kernel)(dbias, partial, R, C);
    ERL_CUDA_LAUNCHED();
    return;
  }
  if (total % 4 == 0 && aligned4(dpre) && aligned4(dact) && aligned4(pre))
    ERL_KERNEL(grid_for(total / 4, kThreads), kThreads, 0, stream_of(l), bias_gelu_backward4_kernel)(
        dpre, dact, pre, total / 4, kind == Activation::GeluTanh);
  else
    ERL_KERNEL(grid_for(total, kThreads), kThreads, 0, stream_of(l), bias_gelu_backward_kernel)(
        dpre, dact, pre, total, kind == Activation::GeluTanh);
  ERL_CUDA_LAUNCHED();
  if (dbias) colsum_add(l, "bias_gelu_backward", dbias, N, C, rows_of(dpre, C));
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
