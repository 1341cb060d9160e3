// CUDA kernels: the same ops as runtime/cpu/kernels.h (semantics, shapes, accumulate vs overwrite and dropout
// indexing are documented there, once), on float pointers in device memory. Each takes a Launch first: the
// stream to run on and the caller-owned backend Context (cuBLASLt handle, workspace, reduction scratch, math
// and deterministic modes; runtime/cuda/context.h). runtime/ops.h builds the Launch from Exec::stream and
// Exec::backend_context. A bare stream converts to a Launch without context: element-wise ops run with it, ops
// that need a GEMM or a reduction scratch (marked [ctx]) throw an Error naming the missing context.
//
// Numerics: storage is fp32 in this interface except the "bf16 activation storage" section at the end, whose ops
// take Act tensors (fp32 or bf16; runtime/act.h). GEMMs (matmul and attention) run in the Context's
// math mode: MathMode::FP32 (plain fp32 SGEMM, the parity path) or MathMode::BF16 (operands rounded to bf16,
// bf16 tensor cores with fp32 accumulate and fp32 output; context.h). Every reduction is a fixed-order tree or a
// fixed-partition two-stage sum, never atomics, so a given (shape, launch) always produces the same bits.
//
// This header is plain C++ (no CUDA headers) so host code compiled by the C++ compiler can include it.
#pragma once
#include <cstdint>

#include "runtime/act.h"
#include "runtime/config.h"
#include "runtime/cpu/kernels.h"
#include "runtime/philox.h"

namespace erlangshen::cuda {

class Context;

// Where a CUDA op runs. Implicit from a bare stream (cudaStream_t as void*), so `cuda::op(stream, ...)` works.
struct Launch {
  void* stream = nullptr;      // cudaStream_t; nullptr = the legacy default stream
  Context* context = nullptr;  // required by [ctx] ops
  Launch(void* s = nullptr) : stream(s) {}  // NOLINT(google-explicit-constructor): a bare stream is a Launch
  Launch(void* s, void* ctx) : stream(s), context(static_cast<Context*>(ctx)) {}
};

using cpu::AttentionShape;

// ---- GEMM [ctx] ----
void matmul_forward(Launch l, float* out, const float* inp, const float* weight, const float* bias, int N, int C,
                    int OC, bool accumulate = false);
// accumulate_dweight false: dweight = dout^T @ inp (the GEMM's beta 0: a step's first micro-batch, no zeroed
// gradient read), else +=.
void matmul_backward(Launch l, float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int N, int C, int OC, bool accumulate_dinp = false,
                     bool accumulate_dweight = true);
// Fused FFN-in for the tanh GeLU: pre (N, OC) = inp @ weight^T + bias;  act = gelu_tanh(pre). Same result as
// matmul_forward(pre, ..., bias=null) then bias_gelu_forward(act, pre, bias, GeluTanh), in one cuBLASLt call
// (GELU_AUX_BIAS epilogue) when the library offers it, else those two calls. Not in the CPU interface yet.
void matmul_bias_gelu_forward(Launch l, float* act, float* pre, const float* inp, const float* weight,
                              const float* bias, int N, int C, int OC);

// ---- embeddings ----
void word_embedding_forward(Launch l, float* out, const int32_t* ids, const float* word, int N, int C,
                            int vocab_start, int V_local);
// The word-embedding backward from the batch's token-rows index in device memory (runtime/token_rows.h;
// cpu::word_embedding_backward_rows).
void word_embedding_backward_rows(Launch l, float* dword, const float* dout, const TokenRows& rows, int C);
void position_type_embedding_forward(Launch l, float* out, const int32_t* type_ids, const float* pos,
                                     const float* type, int B, int Tn, int C);
// [ctx]
void position_type_embedding_backward(Launch l, float* dpos, float* dtype, const float* dout,
                                      const int32_t* type_ids, int B, int Tn, int C, int type_vocab);

// ---- LayerNorm ----
void layernorm_forward(Launch l, float* out, float* mean, float* rstd, const float* inp, const float* weight,
                       const float* bias, int N, int C, double eps);
// [ctx]
void layernorm_backward(Launch l, float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                        const float* weight, const float* mean, const float* rstd, int N, int C);

// ---- bias + GeLU, tanh ----
void bias_gelu_forward(Launch l, float* act, float* pre, const float* bias, int N, int C, Activation kind);
// [ctx] when dbias != nullptr
void bias_gelu_backward(Launch l, float* dpre, float* dbias, const float* dact, const float* pre, int N, int C,
                        Activation kind);
void tanh_forward(Launch l, float* out, const float* inp, int64_t n);
void tanh_backward(Launch l, float* dinp, const float* dout, const float* out, int64_t n);

// ---- attention [ctx] ----
// scratch: attention_scratch_elems(s) device floats (the CPU backend's size differs: use
// ops::attention_scratch_elems(exec, s)).
int64_t attention_scratch_elems(const AttentionShape& s);
// Elements of the probs tensor attention_forward saves for attention_backward: B NH T T, and with bf16 probs room
// for each row's statistics after them (ContextOptions::attention_saves_scores; attention.cu).
int64_t attention_probs_elems(const AttentionShape& s, bool bf16_probs);
void attention_forward(Launch l, float* out, float* probs, float* scratch, const float* qkv,
                       const uint8_t* key_valid, const AttentionShape& s, const DropoutSpec& dropout);
void attention_backward(Launch l, float* dqkv, float* scratch, const float* dout, const float* qkv,
                        const float* probs, const uint8_t* key_valid, const AttentionShape& s,
                        const DropoutSpec& dropout);

// ---- dropout ----
void dropout_residual_forward(Launch l, float* out, const float* resid, const float* x, int64_t n,
                              const DropoutSpec& d, int64_t index_offset);
void dropout_backward(Launch l, float* dx, const float* dout, int64_t n, const DropoutSpec& d, int64_t index_offset);

// ---- softmax cross-entropy pieces (vocab-parallel), row gather / scatter ----
void ce_rowmax(Launch l, float* rowmax, const float* logits, int M, int V_local);
void ce_sumexp_target(Launch l, float* sumexp, float* target_logit, const float* logits, const float* rowmax,
                      const int32_t* targets, int M, int V_local, int vocab_start);
void ce_backward(Launch l, float* dlogits, const float* logits, const float* rowmax, const float* sumexp,
                 const int32_t* targets, const float* dloss, int M, int V_local, int vocab_start);
void gather_rows(Launch l, float* out, const float* inp, const int32_t* idx, int M, int C);
void scatter_add_rows(Launch l, float* dinp, const float* dout, const int32_t* idx, int M, int C);

// ---- optimizer and reductions ----
// [ctx] (adamw_update_spans with one span)
void adamw_update(Launch l, float* param, const float* grad, float* m, float* v, int64_t n, double lr, double beta1,
                  double beta2, double eps, double weight_decay, int64_t step, double grad_scale);
// [ctx] Sum of squares in double: fixed 64K-element chunks, each a fixed tree, then the chunk sums in order.
// Synchronises the stream (the result is returned to the host).
double sum_squares(Launch l, const float* x, int64_t n);
// [ctx] Multi-tensor forms (runtime/cpu/kernels.h): one launch for all spans (the span table goes to the device
// on the stream); sum_squares_spans synchronises the stream once and writes count doubles to host `out`.
void adamw_update_spans(Launch l, float* param, const float* grad, float* m, float* v, bf16* compute_copy,
                        const FlatSpan* spans, int count, double lr, double beta1, double beta2, double eps,
                        double weight_decay, int64_t step, double grad_scale);
void sum_squares_spans(Launch l, const float* x, const FlatSpan* spans, int count, double* out);
// sum_squares_spans with the count sums left in device memory (`device_out`), enqueued without a synchronisation.
void sum_squares_spans_into(Launch l, const float* x, const FlatSpan* spans, int count, double* device_out);
void scale(Launch l, float* x, int64_t n, double s);
void fill(Launch l, float* x, int64_t n, float value);
void add_inplace(Launch l, float* y, const float* x, int64_t n);

// ---- bf16 activation storage (runtime/act.h; [ctx], MathMode::BF16 required) ----
// The same ops with some tensors stored in bf16 (Act: exactly one of .f / .h set). Semantics are those of
// runtime/act.h, matched by the CPU emulation in runtime/ops_bf16.cpp: bf16 inputs read exactly, fp32 math, each
// bf16 output rounded once (RNE); every GEMM operand in bf16 (fp32 ones rounded, as MathMode::BF16 does anyway),
// fp32 accumulation; a bias gradient sums the gradient as stored (bf16 or fp32).
//   matmul_forward:  out (N, OC) = inp (N, C) @ weight^T + bias. out may be bf16 (cuBLASLt D in bf16, fp32 bias
//                    on the epilogue); accumulate only with an fp32 out.
//   matmul_bias_gelu_forward: pre = inp @ weight^T + bias (stored bf16 when pre is), act = gelu(pre before
//                    rounding), tanh or exact; act and pre both fp32 or both bf16.
//   matmul_backward: dinp (N, C) (+)= dout @ weight (dinp bf16: overwrite only), dweight (OC, C) += dout^T @ inp,
//                    dbias (OC) += sum_n dout (as stored).
//   layernorm_forward: out and inp each fp32 or bf16; mean / rstd fp32.
//   bias_gelu_backward: dpre = dact * gelu'(pre) (may alias dact), dbias += sum_n dpre (as stored).
// The weight of these three is fp32 or the model's bf16 compute copy (read in place, not rounded again).
void matmul_forward(Launch l, Act<float> out, Act<const float> inp, Act<const float> weight, const float* bias, int N,
                    int C, int OC, bool accumulate);
void matmul_bias_gelu_forward(Launch l, Act<float> act, Act<float> pre, Act<const float> inp, Act<const float> weight,
                              const float* bias, int N, int C, int OC, Activation kind);
void matmul_backward(Launch l, Act<float> dinp, float* dweight, float* dbias, Act<const float> dout,
                     Act<const float> inp, Act<const float> weight, int N, int C, int OC, bool accumulate_dinp,
                     bool accumulate_dweight = true);
//   layernorm_backward: dout fp32 or bf16 (read exactly; the LayerNorm's input gradient as the dgrad GEMMs store it);
//                    inp fp32 or bf16 (the residual stream under train.residual=bf16, read exactly).
//                    dinp (accumulated into) fp32 or bf16 (a bf16 residual gradient: the sum rounded once).
void layernorm_backward(Launch l, Act<float> dinp, float* dweight, float* dbias, Act<const float> dout,
                        Act<const float> inp, const float* weight, const float* mean, const float* rstd, int N, int C);
void layernorm_forward(Launch l, Act<float> out, float* mean, float* rstd, Act<const float> inp, const float* weight,
                       const float* bias, int N, int C, double eps);
void bias_gelu_backward(Launch l, Act<float> dpre, float* dbias, Act<const float> dact, Act<const float> pre, int N,
                        int C, Activation kind);
//   matmul_gelu_backward: the MLP's output layer backward through the GeLU in front of it,
//                    dpre (N, C) = (dout (N, OC) @ weight) * gelu'(pre), dweight += dout^T @ act, dbias (OC) +=
//                    sum_n dout, dbias_pre (C) += sum_n dpre (as stored). The product is not rounded before the
//                    derivative (dpre rounded once): with tanh GeLU and bf16 dpre and pre, cuBLASLt's DGELU
//                    epilogue applies it in the dgrad GEMM; otherwise (or when cuBLASLt has no DGELU algorithm)
//                    matmul_backward into dpre, then bias_gelu_backward in place (the product rounded once more).
void matmul_gelu_backward(Launch l, Act<float> dpre, float* dweight, float* dbias, float* dbias_pre,
                          Act<const float> dout, Act<const float> act, Act<const float> weight, Act<const float> pre,
                          int N, int C, int OC, Activation kind, bool accumulate_dweight = true);
//   dropout_residual_forward: out = resid + dropout(x) with x fp32 or bf16 (read exactly); out and resid (optional)
//                    are the residual stream, both fp32 or both bf16 (train.residual=bf16: out rounded once).
void dropout_residual_forward(Launch l, Act<float> out, Act<const float> resid, Act<const float> x, int64_t n,
                              const DropoutSpec& d, int64_t index_offset);
//   dropout_residual_layernorm_forward: h (N, C) = resid + dropout(in) (resid optional, in fp32 or bf16; h and resid
//                    both fp32 or both bf16), then out = LN(h as stored) in out's type; the same bits as
//                    dropout_residual_forward + layernorm_forward, one read of h fewer (layernorm.cu).
void dropout_residual_layernorm_forward(Launch l, Act<float> h, Act<float> out, float* mean, float* rstd,
                                        Act<const float> resid, Act<const float> in, const float* weight,
                                        const float* bias, int N, int C, double eps, const DropoutSpec& d,
                                        int64_t index_offset);
//   layernorm_backward_dropout: layernorm_backward into dinp (accumulated), then dx = dropout'(dinp) in dx's type;
//                    the same bits as the two ops (dx from dinp as stored), one read of dinp fewer. dx must not alias
//                    dinp, dout or inp.
void layernorm_backward_dropout(Launch l, Act<float> dinp, float* dweight, float* dbias, Act<float> dx,
                                Act<const float> dout, Act<const float> inp, const float* weight, const float* mean,
                                const float* rstd, int N, int C, const DropoutSpec& d, int64_t index_offset);
//   dropout_backward: dx = dropout'(dout) (the same bits as the fp32 op) with dout fp32 or bf16 (read exactly),
//                    stored in dx's type.
void dropout_backward(Launch l, Act<float> dx, Act<const float> dout, int64_t n, const DropoutSpec& d,
                      int64_t index_offset);
//   zero: a (n) = 0 in its storage (all zero bytes).
void zero(Launch l, Act<float> a, int64_t n);
//   attention_forward / attention_backward: qkv (B, T, 3C), out (B, T, C), dout, dqkv and probs (B, NH, T, T) in
//                    fp32 or bf16 each; scratch (attention_scratch_elems(s)) fp32. The bf16-math attention with
//                    bf16 Q/K/V and dO read in place and bf16 out / dqkv written by the GEMMs (attention.cu); bf16
//                    probs are P rounded once, and the forward's Pd is dropout of the rounded P (what the backward
//                    recomputes from them); with bf16 probs S is the GEMM's bf16 output where the bf16 operands and
//                    the register row kernels run (else fp32), the softmax fp32. bf16 tensors 16-byte aligned when
//                    T and HS are multiples of 8 (else any alignment: a slower fallback through fp32 copies in the
//                    scratch). All fp32: the fp32 ops above, unchanged.
void attention_forward(Launch l, Act<float> out, Act<float> probs, float* scratch, Act<const float> qkv,
                       const uint8_t* key_valid, const AttentionShape& s, const DropoutSpec& dropout);
void attention_backward(Launch l, Act<float> dqkv, float* scratch, Act<const float> dout, Act<const float> qkv,
                        Act<const float> probs, const uint8_t* key_valid, const AttentionShape& s,
                        const DropoutSpec& dropout);

// ---- mixed precision helpers ----
// dst (bf16 bits, n) = round-to-nearest-even(src): refreshes the bf16 compute copy from fp32 master weights.
void float_to_bf16(Launch l, uint16_t* dst, const float* src, int64_t n);
void bf16_to_float(Launch l, float* dst, const uint16_t* src, int64_t n);

}  // namespace erlangshen::cuda
