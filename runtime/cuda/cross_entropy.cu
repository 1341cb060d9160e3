// Softmax cross-entropy in pieces that compose over a vocab-parallel class axis (the caller all-reduces max, then
// sums; runtime/cpu/kernels.h), one block per row, fixed-order block reductions:
//   rowmax_m = max_v l_mv;  sumexp_m = sum_v exp(l_mv - rowmax_m);  target_m = l_m,target (0 if not local)
//   dlogits_mv = (exp(l_mv - rowmax_m) / sumexp_m - [v == target]) * dloss_m
// plus the row gather / scatter that restrict the MLM head to masked positions.
#include "runtime/cuda/common.cuh"

namespace erlangshen::cuda {
namespace {

constexpr int kThreads = 256;

__global__ void ce_rowmax_kernel(float* rowmax, const float* logits, int V) {
  __shared__ float smem[32];
  const float* l = logits + static_cast<int64_t>(blockIdx.x) * V;
  float mx = -INFINITY;
  for (int v = threadIdx.x; v < V; v += blockDim.x) mx = fmaxf(mx, l[v]);
  mx = block_max(mx, smem);
  if (threadIdx.x == 0) rowmax[blockIdx.x] = mx;
}

__global__ void ce_sumexp_target_kernel(float* sumexp, float* target_logit, const float* logits, const float* rowmax,
                                        const int32_t* targets, int V, int vocab_start) {
  __shared__ float smem[32];
  const int m = blockIdx.x;
  const float* l = logits + static_cast<int64_t>(m) * V;
  const float mx = rowmax[m];
  float s = 0.0f;
  for (int v = threadIdx.x; v < V; v += blockDim.x) s += expf(l[v] - mx);
  s = block_sum(s, smem);
  if (threadIdx.x == 0) {
    sumexp[m] = s;
    const int local = targets[m] - vocab_start;
    target_logit[m] = (local >= 0 && local < V) ? l[local] : 0.0f;
  }
}

__global__ void ce_backward_kernel(float* dlogits, const float* logits, const float* rowmax, const float* sumexp,
                                   const int32_t* targets, const float* dloss, int V, int vocab_start) {
  const int m = blockIdx.x;
  const float* l = logits + static_cast<int64_t>(m) * V;
  float* d = dlogits + static_cast<int64_t>(m) * V;
  const float mx = rowmax[m], inv = 1.0f / sumexp[m], g = dloss[m];
  const int local = targets[m] - vocab_start;
  for (int v = threadIdx.x; v < V; v += blockDim.x) {
    float x = expf(l[v] - mx) * inv * g;
    if (v == local) x -= g;
    d[v] = x;
  }
}

__global__ void gather_rows_kernel(float* out, const float* inp, const int32_t* idx, int C) {
  const int m = blockIdx.x;
  const float* src = inp + static_cast<int64_t>(idx[m]) * C;
  float* dst = out + static_cast<int64_t>(m) * C;
  for (int c = threadIdx.x; c < C; c += blockDim.x) dst[c] = src[c];
}

__global__ void scatter_add_rows_kernel(float* dinp, const float* dout, const int32_t* idx, int C) {
  const int m = blockIdx.x;
  float* dst = dinp + static_cast<int64_t>(idx[m]) * C;
  const float* src = dout + static_cast<int64_t>(m) * C;
  for (int c = threadIdx.x; c < C; c += blockDim.x) dst[c] += src[c];
}

}  // namespace

void ce_rowmax(Launch l, float* rowmax, const float* logits, int M, int V_local) {
  if (M <= 0) return;
  ERL_KERNEL(M, kThreads, 0, stream_of(l), ce_rowmax_kernel)(rowmax, logits, V_local);
  ERL_CUDA_LAUNCHED();
}

void ce_sumexp_target(Launch l, float* sumexp, float* target_logit, const float* logits, const float* rowmax,
                      const int32_t* targets, int M, int V_local, int vocab_start) {
  if (M <= 0) return;
  ERL_KERNEL(M, kThreads, 0, stream_of(l), ce_sumexp_target_kernel)(sumexp, target_logit, logits, rowmax, targets, V_local,
                                                            vocab_start);
  ERL_CUDA_LAUNCHED();
}

void ce_backward(Launch l, float* dlogits, const float* logits, const float* rowmax, const float* sumexp,
                 const int32_t* targets, const float* dloss, int M, int V_local, int vocab_start) {
  if (M <= 0) return;
  ERL_KERNEL(M, kThreads, 0, stream_of(l), ce_backward_kernel)(dlogits, logits, rowmax, sumexp, targets, dloss, V_local,
                                                       vocab_start);
  ERL_CUDA_LAUNCHED();
}

void gather_rows(Launch l, float* out, const float* inp, const int32_t* idx, int M, int C) {
  if (M <= 0) return;
  ERL_KERNEL(M, kThreads, 0, stream_of(l), gather_rows_kernel)(out, inp, idx, C);
  ERL_CUDA_LAUNCHED();
}

void scatter_add_rows(Launch l, float* dinp, const float* dout, const int32_t* idx, int M, int C) {
  if (M <= 0) return;
  ERL_KERNEL(M, kThreads, 0, stream_of(l), scatter_add_rows_kernel)(dinp, dout, idx, C);
  ERL_CUDA_LAUNCHED();
}

}  // namespace erlangshen::cuda
