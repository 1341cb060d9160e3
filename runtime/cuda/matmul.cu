// Linear layers through cuBLASLt (row-major API on column-major BLAS: row-major X (r, c) is column-major X^T):
//   forward   out (N, OC) = inp (N, C) @ W (OC, C)^T + b     ->  C(OC, N) = op_T(W^T(col)) @ inp^T(col) + b
//   backward  dinp (N, C) = dout @ W                         ->  C(C, N)  = W^T(col) @ dout^T
//             dW (OC, C) += dout^T @ inp                     ->  C(C, OC) = inp^T @ op_T(dout^T)
//             db (OC)    += sum_n dout                       ->  deterministic column sum (colsum.cuh)
// The bias rides on the GEMM epilogue (CUBLASLT_EPILOGUE_BIAS); FFN-in can fuse bias + tanh GeLU as well.
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
  if (dinp) {
    GemmArgs g;
    g.m = C, g.n = N, g.k = OC;
    g.A = weight, g.lda = C;
    g.B = dout, g.ldb = OC;
    g.C = dinp, g.ldc = C;
    g.beta = accumulate_dinp ? 1.0f : 0.0f;
    gemm(l, "matmul_backward", g);
  }
  if (dweight) {
    GemmArgs g;
    g.trans_b = true;
    g.m = C, g.n = OC, g.k = N;
    g.A = inp, g.lda = C;
    g.B = dout, g.ldb = OC;
    g.C = dweight, g.ldc = C;
    g.beta = 1.0f;
    gemm(l, "matmul_backward", g);
  }
  if (dbias) colsum_add(l, "matmul_backward", dbias, N, OC, RowsOf{dout, OC});
}

}  // namespace erlangshen::cuda
