// Linear layers through cuBLASLt (row-major API on column-major BLAS: row-major X (r, c) is column-major X^T):
//   forward   out (N, OC) = inp (N, C) @ W (OC, C)^T + b     ->  C(OC, N) = op_T(W^T(col)) @ inp^T(col) + b
//   backward  dinp (N, C) = dout @ W                         ->  C(C, N)  = W^T(col) @ dout^T
//             dW (OC, C) += dout^T @ inp                     ->  C(C, OC) = inp^T @ op_T(dout^T)
//             db (OC)    += sum_n dout                       ->  deterministic column sum (colsum.cuh)
// The bias rides on the GEMM epilogue (CUBLASLT_EPILOGUE_BIAS); FFN-in can fuse bias + tanh GeLU as well.
#include <algorithm>

#include "runtime/cuda/colsum.cuh"
#include "runtime/cuda/gemm.cuh"

namespace erlangshen::cuda {
namespace {

__global__ void add_bias_kernel(float* out, const float* bias, int64_t N, int OC) {
  const int64_t total = N * OC;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x)
    out[i] += bias[i % OC];
}

GemmArgs forward_args(float* out, const float* inp, const float* weight, int N, int C, int OC, bool accumulate) {
  GemmArgs g;
  g.trans_a = true;  // W stored column-major (C, OC)
  g.m = OC, g.n = N, g.k = C;
  g.A = weight, g.lda = C;
  g.B = inp, g.ldb = C;
  g.C = out, g.ldc = OC;
  g.beta = accumulate ? 1.0f : 0.0f;
  return g;
}

// dinp (N, C) (+)= dout (N, OC) @ W (OC, C)      ->  C(C, N) = W^T(col) @ dout^T
GemmArgs dgrad_args(float* dinp, const void* dout, const void* weight, int N, int C, int OC, bool accumulate) {
  GemmArgs g;
  g.m = C, g.n = N, g.k = OC;
  g.A = weight, g.lda = C;
  g.B = dout, g.ldb = OC;
  g.C = dinp, g.ldc = C;
  g.beta = accumulate ? 1.0f : 0.0f;
  return g;
}

// dW (OC, C) += dout^T @ inp                   ->  C(C, OC) = inp^T @ op_T(dout^T)
GemmArgs wgrad_args(float* dweight, const void* dout, const void* inp, int N, int C, int OC) {
  GemmArgs g;
  g.trans_b = true;
  g.m = C, g.n = OC, g.k = N;
  g.A = inp, g.lda = C;
  g.B = dout, g.ldb = OC;
  g.C = dweight, g.ldc = C;
  g.beta = 1.0f;
  return g;
}

// MathMode::BF16 with both dinp and dweight: dout is rounded to bf16 once for the two GEMMs (gemm() would round it
// once per call), then W for dgrad and inp for wgrad into the same second slot of the staging. Needs every
// dimension a multiple of 8 (bf16 tensor-core layouts); other shapes take gemm()'s per-call staging.
bool matmul_backward_shared_dout(const Launch& l, float* dinp, float* dweight, const float* dout, const float* inp,
                                 const float* weight, int N, int C, int OC, bool accumulate_dinp) {
  Context& ctx = need_context(l, "matmul_backward");
  if (ctx.math() != MathMode::BF16 || !dinp || !dweight || N % 8 || C % 8 || OC % 8) return false;
  const int64_t n_dout = int64_t(N) * OC, n_other = std::max(int64_t(OC) * C, int64_t(N) * C);
  const int64_t other_offset = round_up_256(2 * n_dout);
  char* stage = static_cast<char*>(ctx.staging(static_cast<size_t>(other_offset + round_up_256(2 * n_other))));
  auto* dout16 = reinterpret_cast<uint16_t*>(stage);
  auto* other16 = reinterpret_cast<uint16_t*>(stage + other_offset);
  float_to_bf16(l, dout16, dout, n_dout);
  float_to_bf16(l, other16, weight, int64_t(OC) * C);
  GemmArgs g = dgrad_args(dinp, dout16, other16, N, C, OC, accumulate_dinp);
  g.ab_type = CUDA_R_16BF;
  gemm(l, "matmul_backward", g);
  float_to_bf16(l, other16, inp, int64_t(N) * C);  // stream order: after the dgrad GEMM has read W
  GemmArgs w = wgrad_args(dweight, dout16, other16, N, C, OC);
  w.ab_type = CUDA_R_16BF;
  gemm(l, "matmul_backward", w);
  return true;
}

}  // namespace

void matmul_forward(Launch l, float* out, const float* inp, const float* weight, const float* bias, int N, int C,
                    int OC, bool accumulate) {
  GemmArgs g = forward_args(out, inp, weight, N, C, OC, accumulate);
  if (bias) {
    g.epilogue = Epilogue::Bias;
    g.bias = bias;
    if (gemm(l, "matmul_forward", g)) return;
    g.epilogue = Epilogue::None;
    g.bias = nullptr;
  }
  gemm(l, "matmul_forward", g);
  if (bias) {
    add_bias_kernel<<<grid_for(int64_t(N) * OC, 256), 256, 0, stream_of(l)>>>(out, bias, N, OC);
    ERL_CUDA_LAUNCHED();
  }
}

void matmul_bias_gelu_forward(Launch l, float* act, float* pre, const float* inp, const float* weight,
                              const float* bias, int N, int C, int OC) {
  GemmArgs g = forward_args(act, inp, weight, N, C, OC, false);
  g.epilogue = Epilogue::GeluAuxBias;
  g.bias = bias;
  g.aux = pre;
  g.ldaux = OC;
  if (OC % 8 == 0 && gemm(l, "matmul_bias_gelu_forward", g)) return;
  matmul_forward(l, pre, inp, weight, nullptr, N, C, OC, false);
  bias_gelu_forward(l, act, pre, bias, N, OC, Activation::GeluTanh);
}

void matmul_backward(Launch l, float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int N, int C, int OC, bool accumulate_dinp) {
  if (!matmul_backward_shared_dout(l, dinp, dweight, dout, inp, weight, N, C, OC, accumulate_dinp)) {
    if (dinp) gemm(l, "matmul_backward", dgrad_args(dinp, dout, weight, N, C, OC, accumulate_dinp));
    if (dweight) gemm(l, "matmul_backward", wgrad_args(dweight, dout, inp, N, C, OC));
  }
  if (dbias) colsum_add(l, "matmul_backward", dbias, N, OC, RowsOf{dout, OC});
}

}  // namespace erlangshen::cuda
