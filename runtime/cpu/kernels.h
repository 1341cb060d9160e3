// CPU kernels, forward and backward, for T = float (training) and double (gradient checks).
// All tensors are row-major and contiguous. Conventions:
//   * parameter gradients always accumulate (+=), so gradient accumulation over micro-batches is free;
//   * activation gradients overwrite unless the argument is named `*_accum` or documented otherwise;
//   * randomness is Philox keyed by global coordinates (runtime/philox.h): `row_offset`/`sample_offset`/
//     `head_offset` place the local block inside the global tensor so every layout draws the same bits.
// Multithreaded with OpenMP; OpenBLAS is single-threaded inside each thread.
#pragma once
#include <cstdint>

#include "runtime/bf16.h"
#include "runtime/config.h"
#include "runtime/flat_span.h"
#include "runtime/philox.h"
#include "runtime/token_rows.h"

namespace erlangshen::cpu {

// ---- GEMM (CBLAS) ----
// out (N, OC) = inp (N, C) @ weight (OC, C)^T + bias (OC)      [bias may be null; accumulate: out += ...]
template <class T>
void matmul_forward(T* out, const T* inp, const T* weight, const T* bias, int N, int C, int OC, bool accumulate = false);
// dinp (N, C) = dout @ weight   (accumulate_dinp: +=; dinp may be null)
// dweight (OC, C) += dout^T @ inp;  dbias (OC) += sum_n dout   (either may be null)
template <class T>
void matmul_backward(T* dinp, T* dweight, T* dbias, const T* dout, const T* inp, const T* weight, int N, int C, int OC,
                     bool accumulate_dinp = false);

// ---- embeddings ----
// Vocab-parallel lookup: out (N, C) = word[id - vocab_start] if vocab_start <= id < vocab_start + V_local else 0.
template <class T>
void word_embedding_forward(T* out, const int32_t* ids, const T* word, int N, int C, int vocab_start, int V_local);
// dword (V_local, C) += scatter of dout rows (deterministic: each output row summed in token order).
template <class T>
void word_embedding_backward(T* dword, const T* dout, const int32_t* ids, int N, int C, int vocab_start, int V_local);
// The same sums from the batch's token-rows index (runtime/token_rows.h): dword[row[r]] += dout of the row's tokens,
// in token order (the same bits as the scan above).
template <class T>
void word_embedding_backward_rows(T* dword, const T* dout, const TokenRows& rows, int C);
// out (B, T, C) += pos (P, C)[t] + type (TV, C)[type_ids[b, t]]
template <class T>
void position_type_embedding_forward(T* out, const int32_t* type_ids, const T* pos, const T* type, int B, int Tn, int C);
// dpos (P, C) += sum_b dout[b, t];  dtype (TV, C) += sum over tokens of that type
template <class T>
void position_type_embedding_backward(T* dpos, T* dtype, const T* dout, const int32_t* type_ids, int B, int Tn, int C,
                                      int type_vocab);

// ---- LayerNorm ----
// out = (x - mean) * rstd * weight + bias, per row of C; saves mean (N), rstd (N).
template <class T>
void layernorm_forward(T* out, T* mean, T* rstd, const T* inp, const T* weight, const T* bias, int N, int C, double eps);
// dinp (N, C) += ...  (accumulates: LN sits on the residual stream); dweight, dbias (C) +=
template <class T>
void layernorm_backward(T* dinp, T* dweight, T* dbias, const T* dout, const T* inp, const T* weight, const T* mean,
                        const T* rstd, int N, int C);

// ---- bias + GeLU ----
// pre (N, C) += bias (in place; kept for backward);  act = gelu(pre)
//   tanh:  gelu(x) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))      (HF gelu_new)
//   exact: gelu(x) = 0.5 x (1 + erf(x / sqrt 2))                           (HF gelu)
template <class T>
void bias_gelu_forward(T* act, T* pre, const T* bias, int N, int C, Activation kind);
// dpre = dact * gelu'(pre) (overwrite; may alias dact);  dbias (C) += sum_n dpre
template <class T>
void bias_gelu_backward(T* dpre, T* dbias, const T* dact, const T* pre, int N, int C, Activation kind);

// ---- tanh (pooler) ----
template <class T>
void tanh_forward(T* out, const T* inp, int64_t n);
// dinp = dout * (1 - out^2)   (overwrite)
template <class T>
void tanh_backward(T* dinp, const T* dout, const T* out, int64_t n);

// ---- attention ----
// Geometry of one attention call. qkv (B, Tn, 3, NH, HS): q | k | v blocks of NH*HS features each.
struct AttentionShape {
  int B, Tn, NH, HS;
  int64_t sample_offset = 0;  // global sample id of local sample 0
  int head_offset = 0;        // global index of local head 0
  int total_heads = 0;        // heads of the unsharded model (0 = NH)
};
// scores = q k^T / sqrt(HS) with padded keys (key_valid[b, j] == 0) masked out; probs = softmax(scores)
// (saved, before dropout); out (B, Tn, NH*HS) = dropout(probs) v, dropout element (b, h, i, j) keyed by global
// index ((sample_offset + b) * total_heads + head_offset + h) * Tn*Tn + i*Tn + j.
// scratch: attention_scratch_elems(s) elements (per-thread T x T work space). probs_bf16: the scores, and then each
// probability, are rounded to bf16 (kept in T) as soon as they are formed, before the softmax, dropout and the
// product with v use them (the bf16 storage of runtime/ops_bf16.h).
template <class T>
void attention_forward(T* out, T* probs, T* scratch, const T* qkv, const uint8_t* key_valid, const AttentionShape& s,
                       const DropoutSpec& dropout, bool probs_bf16 = false);
int64_t attention_scratch_elems(const AttentionShape& s);
// dqkv (B, Tn, 3*NH*HS) overwrite.
template <class T>
void attention_backward(T* dqkv, T* scratch, const T* dout, const T* qkv, const T* probs, const uint8_t* key_valid,
                        const AttentionShape& s, const DropoutSpec& dropout);

// ---- dropout ----
// Element i of a dropout site uses global index (index_offset + i): keep with prob 1-p, scale 1/(1-p).
// out = resid + dropout(x)   (out may alias resid or x; resid may be null for plain dropout)
template <class T>
void dropout_residual_forward(T* out, const T* resid, const T* x, int64_t n, const DropoutSpec& d, int64_t index_offset);
// dx = dropout'(dout)  (overwrite; may alias dout)
template <class T>
void dropout_backward(T* dx, const T* dout, int64_t n, const DropoutSpec& d, int64_t index_offset);

// ---- softmax cross-entropy over a (possibly vocab-parallel) class axis ----
// loss_m = log(sum_v exp(l_mv)) - l_m,target. With the class axis split over ranks, each rank computes local
// pieces, the caller combines them (max: all-reduce max; sumexp, target logit: all-reduce sum):
//   rowmax (M) = max_v logits (M, V_local)
template <class T>
void ce_rowmax(T* rowmax, const T* logits, int M, int V_local);
//   sumexp (M) = sum_v exp(l - rowmax);  target_logit (M) = l[target - vocab_start] if local else 0
template <class T>
void ce_sumexp_target(T* sumexp, T* target_logit, const T* logits, const T* rowmax, const int32_t* targets, int M,
                      int V_local, int vocab_start);
//   dlogits = (exp(l - rowmax) / sumexp - onehot(target)) * dloss[m]   (overwrite; may alias logits)
template <class T>
void ce_backward(T* dlogits, const T* logits, const T* rowmax, const T* sumexp, const int32_t* targets, const T* dloss,
                 int M, int V_local, int vocab_start);

// ---- row gather / scatter (MLM head runs only on masked positions) ----
// out (M, C) = inp[idx[m]]
template <class T>
void gather_rows(T* out, const T* inp, const int32_t* idx, int M, int C);
// dinp[idx[m]] += dout[m]   (rows of idx are distinct)
template <class T>
void scatter_add_rows(T* dinp, const T* dout, const int32_t* idx, int M, int C);

// ---- optimizer and reductions ----
// AdamW (decoupled weight decay), bias-corrected with `step` (1-based); g = grad * grad_scale:
//   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
//   p -= lr * (mhat / (sqrt(vhat) + eps) + wd * p)
template <class T>
void adamw_update(T* param, const T* grad, T* m, T* v, int64_t n, double lr, double beta1, double beta2, double eps,
                  double weight_decay, int64_t step, double grad_scale);
// sum of squares in double, fixed reduction order (deterministic for a given thread count)
template <class T>
double sum_squares(const T* x, int64_t n);
// Multi-tensor forms over spans of flat buffers (runtime/flat_span.h), the same bits as one call per span:
//   adamw_update_spans: adamw_update on every span of param/grad/m/v (all indexed by the span offsets), with
//     weight_decay where span.decay and 0 elsewhere; then compute_copy[i] = bf16(param[i]) (round to nearest even)
//     on the spans when compute_copy is not null (the bf16 GEMM copy of the weights, refreshed in the same pass).
//   sum_squares_spans: out[s] = sum_squares(x + spans[s].offset, spans[s].n) for s < count.
template <class T>
void adamw_update_spans(T* param, const T* grad, T* m, T* v, bf16* compute_copy, const FlatSpan* spans, int count,
                        double lr, double beta1, double beta2, double eps, double weight_decay, int64_t step,
                        double grad_scale);
template <class T>
void sum_squares_spans(const T* x, const FlatSpan* spans, int count, double* out);
// The form that leaves the sums where the ops run (runtime/ops.h): on the CPU the same as sum_squares_spans.
template <class T>
void sum_squares_spans_into(const T* x, const FlatSpan* spans, int count, double* out) {
  sum_squares_spans(x, spans, count, out);
}
template <class T>
void scale(T* x, int64_t n, double s);
template <class T>
void fill(T* x, int64_t n, T value);
// y += x
template <class T>
void add_inplace(T* y, const T* x, int64_t n);

}  // namespace erlangshen::cpu
