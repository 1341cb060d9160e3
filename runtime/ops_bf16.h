// The ops that accept bf16 storage (runtime/act.h), for float models: dispatched to the CUDA backend's native
// kernels (runtime/cuda/kernels.h) or, on the CPU, emulated on fp32 copies with exactly the semantics of act.h
// (the reference the CUDA kernels are tested against). runtime/ops.h routes a call here when any of its Act
// arguments is bf16; calls with fp32 tensors only never come here and run unchanged.
#pragma once
#include "runtime/act.h"
#include "runtime/config.h"
#include "runtime/cpu/kernels.h"
#include "runtime/exec.h"

namespace erlangshen::ops_bf16 {

// dst (n) = src rounded to bf16 (RNE): the model's bf16 compute copy of its parameters
void copy_rounded_to_bf16(const Exec& x, bf16* dst, const float* src, int64_t n);

// out (N, OC) (+)= inp (N, C) @ w (OC, C)^T + b          (accumulate only with an fp32 out)
void matmul_forward(const Exec& x, Act<float> out, Act<const float> inp, Act<const float> w, const float* b, int N,
                    int C, int OC, bool accumulate);
// pre (N, OC) = inp @ w^T + b;  act = gelu(pre before rounding)   (act, pre: both fp32 or both bf16)
void matmul_bias_gelu_forward(const Exec& x, Act<float> act, Act<float> pre, Act<const float> inp, Act<const float> w,
                              const float* b, int N, int C, int OC, Activation kind);
// dinp (N, C) (+)= dout @ w;  dw (OC, C) += dout^T @ inp;  db (OC) += sum_n dout (as stored)
void matmul_backward(const Exec& x, Act<float> dinp, float* dw, float* db, Act<const float> dout, Act<const float> inp,
                     Act<const float> w, int N, int C, int OC, bool accumulate_dinp, bool accumulate_dw = true);
// out (N, C) = LN(inp) rounded to out's storage, inp read from its storage; mean, rstd (N) fp32
void layernorm_forward(const Exec& x, Act<float> out, float* mean, float* rstd, Act<const float> inp, const float* w,
                       const float* b, int N, int C, double eps);
// dinp (N, C) += LN'(dout) with dout and inp read from their storage, the sum rounded once into dinp's; dw, db (C)
// accumulated (runtime/cpu/kernels.h)
void layernorm_backward(const Exec& x, Act<float> dinp, float* dw, float* db, Act<const float> dout,
                        Act<const float> inp, const float* w, const float* mean, const float* rstd, int N, int C);
// dpre = dact * gelu'(pre) (may alias dact);  db (C) += sum_n dpre (as stored)
void bias_gelu_backward(const Exec& x, Act<float> dpre, float* db, Act<const float> dact, Act<const float> pre, int N,
                        int C, Activation kind);

// dpre (N, C) = (dout (N, OC) @ w) * gelu'(pre) with the product in fp32 (dpre rounded once);  dw (OC, C) +=
// dout^T @ act;  db (OC) += sum_n dout;  dbias_pre (C) += sum_n dpre (as stored). (The CUDA backend fuses the
// derivative into the GEMM's epilogue; where cuBLASLt cannot, it rounds the product into dpre first.)
void matmul_gelu_backward(const Exec& x, Act<float> dpre, float* dw, float* db, float* dbias_pre, Act<const float> dout,
                          Act<const float> act, Act<const float> w, Act<const float> pre, int N, int C, int OC,
                          Activation kind, bool accumulate_dw = true);

// out (n) = resid + dropout(in) (runtime/cpu/kernels.h) with `in` and resid (optional) read from their storage, out
// rounded once into its storage (out and resid, a residual stream, have one storage)
void dropout_residual_forward(const Exec& x, Act<float> out, Act<const float> resid, Act<const float> in, int64_t n,
                              const DropoutSpec& d, int64_t offset);
// dx (n) = dropout'(dout) (runtime/cpu/kernels.h) with dout read from its storage, rounded once into dx's storage
void dropout_backward(const Exec& x, Act<float> dx, Act<const float> dout, int64_t n, const DropoutSpec& d,
                      int64_t offset);
// a (n) = 0 (bf16 storage)
void zero(const Exec& x, Act<float> a, int64_t n);

// Attention (runtime/cpu/kernels.h layouts): qkv (B, T, 3C), out (B, T, C), dout, dqkv and probs in T or bf16
// storage; scratch fp32. The fp32 attention on the widened inputs, each bf16 output rounded once; bf16 probs are
// rounded as soon as the softmax has formed them, before the dropout and the PV product use them (the backward
// reads them as stored). (The CUDA backend's bf16 math also rounds the dropped probabilities and dS for its GEMMs:
// a bf16-math difference.)
void attention_forward(const Exec& x, Act<float> out, Act<float> probs, float* scratch, Act<const float> qkv,
                       const uint8_t* valid, const cpu::AttentionShape& s, const DropoutSpec& d);
void attention_backward(const Exec& x, Act<float> dqkv, float* scratch, Act<const float> dout, Act<const float> qkv,
                        Act<const float> probs, const uint8_t* valid, const cpu::AttentionShape& s,
                        const DropoutSpec& d);

}  // namespace erlangshen::ops_bf16
