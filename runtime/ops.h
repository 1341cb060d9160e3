// Backend dispatch: every op the model uses, called as ops::NAME(exec, args...). The CPU backend
// (runtime/cpu/kernels.h, float and double) runs everywhere; the CUDA backend (runtime/cuda/kernels.h,
// float pointers on the device, exec.stream) is used when exec.device == Device::CUDA and the build has it.
// Signatures and semantics are documented once, in runtime/cpu/kernels.h.
#pragma once
#include <type_traits>
#include <vector>

#include "runtime/act.h"
#include "runtime/check.h"
#include "runtime/cpu/kernels.h"
#include "runtime/exec.h"
#include "runtime/ops_bf16.h"
#if defined(ERLANGSHEN_HAVE_CUDA)
#include "runtime/cuda/flash_attention.h"
#include "runtime/cuda/kernels.h"
#include "runtime/cuda/op_profiler.h"
#endif

namespace erlangshen {

// Device, Exec and cuda_available() live in runtime/exec.h.

#if defined(ERLANGSHEN_HAVE_CUDA)
// One CUDA op, timed by the Context's OpProfiler when one is attached (erlangshen bench --profile).
#define ERL_CUDA_CALL(fn, ...)                                     \
  do {                                                             \
    cuda::OpScope erl_op_scope_(x.backend_context, #fn);           \
    cuda::fn(cuda::Launch(x.stream, x.backend_context), __VA_ARGS__); \
  } while (0)
#else
#define ERL_CUDA_CALL(fn, ...) throw Error("this build has no CUDA backend (configure with -DERLANGSHEN_CUDA=ON)")
#endif

// Inside an op whose Act arguments include bf16 storage: the ops_bf16 function of the same name (float models).
#define ERL_BF16_ROUTE(fn, ...)                                                   \
  do {                                                                            \
    if constexpr (std::is_same_v<T, float>) {                                     \
      return ops_bf16::fn(x, __VA_ARGS__);                                        \
    } else {                                                                      \
      throw Error(#fn ": bf16 activation storage needs a float model");           \
    }                                                                             \
  } while (0)

#define ERL_DISPATCH(fn, ...)                                                        \
  do {                                                                               \
    if (x.device == Device::CUDA) {                                                  \
      if constexpr (std::is_same_v<T, float>) {                                      \
        ERL_CUDA_CALL(fn, __VA_ARGS__);                                              \
        return;                                                                      \
      } else {                                                                       \
        throw Error(#fn ": the CUDA backend runs float tensors only");               \
      }                                                                              \
    }                                                                                \
    return cpu::fn<T>(__VA_ARGS__);                                                  \
  } while (0)

namespace ops {


// Ops whose activation tensors may be stored in bf16 take them as Act (runtime/act.h; a T* converts implicitly).
// With every Act in T storage they run exactly as before; with any in bf16 (float models only) they go to
// runtime/ops_bf16.h. T is deduced from the plain pointer arguments (biases, gradients, statistics), never from an
// Act; where none is a typed pointer, name it: ops::matmul_forward<float>(...).
// A GEMM weight is an Act too: T storage, or the model's bf16 compute copy under bf16 storage (the same values the
// GEMM would round the T weight to; a bf16 weight needs bf16 storage somewhere in the op's tensors).
template <class T>
void matmul_forward(const Exec& x, Act<no_deduce_t<T>> out, Act<const no_deduce_t<T>> inp,
                    Act<const no_deduce_t<T>> w, const T* b, int N, int C, int OC, bool acc = false) {
  if (out.is_bf16() || inp.is_bf16() || w.is_bf16()) ERL_BF16_ROUTE(matmul_forward, out, inp, w, b, N, C, OC, acc);
  ERL_DISPATCH(matmul_forward, out.f, inp.f, w.f, b, N, C, OC, acc);
}
template <class T>
void fill(const Exec& x, T* v, int64_t n, T value);
// A weight gradient dw (OC, C) that a backward is to overwrite (acc_dw false) where only the CUDA GEMMs can (beta 0):
// the CPU kernels add, and with no rows no GEMM writes it, so it is zeroed here and then added to. Returns the
// acc_dw to pass on.
template <class T>
bool prepare_overwritten_dw(const Exec& x, T* dw, int N, int C, int OC, bool acc_dw) {
  if (!dw || acc_dw || (x.on_device() && N > 0)) return acc_dw;
  fill(x, dw, static_cast<int64_t>(OC) * C, T(0));
  return true;
}
// dinp (N, C) (+)= dout @ w;  dw (OC, C) += dout^T @ inp, or = with acc_dw false (a step's first micro-batch: on
// CUDA the weight-gradient GEMM overwrites dw, beta 0, so dw needs no zeroing and is not read; on the CPU, whose
// kernels add, dw is zeroed first: the same sums);  db (OC) += sum_n dout
template <class T>
void matmul_backward(const Exec& x, Act<no_deduce_t<T>> dinp, T* dw, T* db, Act<const no_deduce_t<T>> dout,
                     Act<const no_deduce_t<T>> inp, Act<const no_deduce_t<T>> w, int N, int C, int OC,
                     bool acc_dinp = false, bool acc_dw = true) {
  acc_dw = prepare_overwritten_dw(x, dw, N, C, OC, acc_dw);
  if (dinp.is_bf16() || dout.is_bf16() || inp.is_bf16() || w.is_bf16())
    ERL_BF16_ROUTE(matmul_backward, dinp, dw, db, dout, inp, w, N, C, OC, acc_dinp, acc_dw);
  if constexpr (std::is_same_v<T, float>) {
    if (x.device == Device::CUDA) {
      ERL_CUDA_CALL(matmul_backward, dinp.f, dw, db, dout.f, inp.f, w.f, N, C, OC, acc_dinp, acc_dw);
      return;
    }
  }
  ERL_DISPATCH(matmul_backward, dinp.f, dw, db, dout.f, inp.f, w.f, N, C, OC, acc_dinp);
}
template <class T>
void word_embedding_forward(const Exec& x, T* out, const int32_t* ids, const T* word, int N, int C, int v0, int Vl) {
  ERL_DISPATCH(word_embedding_forward, out, ids, word, N, C, v0, Vl);
}
template <class T>
void word_embedding_backward_rows(const Exec& x, T* dword, const T* dout, const TokenRows& rows, int C) {
  ERL_DISPATCH(word_embedding_backward_rows, dword, dout, rows, C);
}
template <class T>
void position_type_embedding_forward(const Exec& x, T* out, const int32_t* types, const T* pos, const T* type, int B,
                                     int Tn, int C) {
  ERL_DISPATCH(position_type_embedding_forward, out, types, pos, type, B, Tn, C);
}
template <class T>
void position_type_embedding_backward(const Exec& x, T* dpos, T* dtype, const T* dout, const int32_t* types, int B,
                                      int Tn, int C, int TV) {
  ERL_DISPATCH(position_type_embedding_backward, dpos, dtype, dout, types, B, Tn, C, TV);
}
// inp: a residual stream, stored as T or (train.residual=bf16) in bf16
template <class T>
void layernorm_forward(const Exec& x, Act<no_deduce_t<T>> out, T* mean, T* rstd, Act<const no_deduce_t<T>> inp,
                       const T* w, const T* b, int N, int C, double eps) {
  if (out.is_bf16() || inp.is_bf16()) ERL_BF16_ROUTE(layernorm_forward, out, mean, rstd, inp, w, b, N, C, eps);
  ERL_DISPATCH(layernorm_forward, out.f, mean, rstd, inp.f, w, b, N, C, eps);
}
// dinp (accumulated into) and inp: a residual stream's gradient and the stream, T or (train.residual=bf16) bf16
template <class T>
void layernorm_backward(const Exec& x, Act<no_deduce_t<T>> dinp, T* dw, T* db, Act<const no_deduce_t<T>> dout,
                        Act<const no_deduce_t<T>> inp, const T* w, const T* mean, const T* rstd, int N, int C) {
  if (dinp.is_bf16() || dout.is_bf16() || inp.is_bf16())
    ERL_BF16_ROUTE(layernorm_backward, dinp, dw, db, dout, inp, w, mean, rstd, N, C);
  ERL_DISPATCH(layernorm_backward, dinp.f, dw, db, dout.f, inp.f, w, mean, rstd, N, C);
}
template <class T>
void bias_gelu_forward(const Exec& x, T* act, T* pre, const T* bias, int N, int C, Activation kind) {
  ERL_DISPATCH(bias_gelu_forward, act, pre, bias, N, C, kind);
}
// FFN-in: pre (N, OC) = inp (N, C) @ W^T + b (saved for backward), act = GeLU(pre). On CUDA with tanh GeLU the bias
// and GeLU ride on the GEMM's epilogue (cuBLASLt GELU_AUX_BIAS: no separate pass over the N x OC tensors); the CPU
// backend, and exact GeLU, run the GEMM then the bias + GeLU pass.
template <class T>
void matmul_bias_gelu_forward(const Exec& x, Act<no_deduce_t<T>> act, Act<no_deduce_t<T>> pre,
                              Act<const no_deduce_t<T>> inp, Act<const no_deduce_t<T>> w, const T* b, int N, int C,
                              int OC, Activation kind) {
  if (act.is_bf16() || pre.is_bf16() || inp.is_bf16() || w.is_bf16())
    ERL_BF16_ROUTE(matmul_bias_gelu_forward, act, pre, inp, w, b, N, C, OC, kind);
  if constexpr (std::is_same_v<T, float>) {
    if (x.device == Device::CUDA && kind == Activation::GeluTanh && b != nullptr) {
      ERL_CUDA_CALL(matmul_bias_gelu_forward, act.f, pre.f, inp.f, w.f, b, N, C, OC);
      return;
    }
  }
  matmul_forward<T>(x, pre.f, inp.f, w.f, static_cast<const T*>(nullptr), N, C, OC);
  bias_gelu_forward(x, act.f, pre.f, b, N, OC, kind);
}
template <class T>
void bias_gelu_backward(const Exec& x, Act<no_deduce_t<T>> dpre, T* dbias, Act<const no_deduce_t<T>> dact,
                        Act<const no_deduce_t<T>> pre, int N, int C, Activation kind) {
  if (dpre.is_bf16() || dact.is_bf16() || pre.is_bf16())
    ERL_BF16_ROUTE(bias_gelu_backward, dpre, dbias, dact, pre, N, C, kind);
  ERL_DISPATCH(bias_gelu_backward, dpre.f, dbias, dact.f, pre.f, N, C, kind);
}
// The MLP's output layer backward through the GeLU in front of it (act = gelu(pre)):
//   dpre (N, C) = (dout (N, OC) @ w (OC, C)) * gelu'(pre);  dw += dout^T @ act;  db (OC) += sum_n dout;
//   dbias_pre (C) += sum_n dpre (as stored)
// With every tensor in T storage: matmul_backward into dpre, then bias_gelu_backward in place (the same bits as
// those two calls). With bf16 storage (ops_bf16.h): the product is not rounded before the derivative.
//   (acc_dw: as matmul_backward's)
template <class T>
void matmul_gelu_backward(const Exec& x, Act<no_deduce_t<T>> dpre, T* dw, T* db, T* dbias_pre,
                          Act<const no_deduce_t<T>> dout, Act<const no_deduce_t<T>> act, Act<const no_deduce_t<T>> w,
                          Act<const no_deduce_t<T>> pre, int N, int C, int OC, Activation kind, bool acc_dw = true) {
  acc_dw = prepare_overwritten_dw(x, dw, N, C, OC, acc_dw);
  if (dpre.is_bf16() || dout.is_bf16() || act.is_bf16() || w.is_bf16() || pre.is_bf16())
    ERL_BF16_ROUTE(matmul_gelu_backward, dpre, dw, db, dbias_pre, dout, act, w, pre, N, C, OC, kind, acc_dw);
  matmul_backward<T>(x, dpre, dw, db, dout, act, w, N, C, OC, false, acc_dw);
  bias_gelu_backward<T>(x, dpre, dbias_pre, Act<const T>(dpre), pre, N, C, kind);
}
template <class T>
void tanh_forward(const Exec& x, T* out, const T* inp, int64_t n) {
  ERL_DISPATCH(tanh_forward, out, inp, n);
}
template <class T>
void tanh_backward(const Exec& x, T* dinp, const T* dout, const T* out, int64_t n) {
  ERL_DISPATCH(tanh_backward, dinp, dout, out, n);
}
template <class T>
void attention_forward(const Exec& x, Act<no_deduce_t<T>> out, Act<no_deduce_t<T>> probs, T* scratch,
                       Act<const no_deduce_t<T>> qkv, const uint8_t* valid, const cpu::AttentionShape& s,
                       const DropoutSpec& d) {
  if (out.is_bf16() || probs.is_bf16() || qkv.is_bf16())
    ERL_BF16_ROUTE(attention_forward, out, probs, scratch, qkv, valid, s, d);
  ERL_DISPATCH(attention_forward, out.f, probs.f, scratch, qkv.f, valid, s, d);
}
// Elements of the `probs` argument of attention_forward/backward on this device (bf16_probs: stored in bf16): the
// (B, NH, T, T) probabilities, and on CUDA with bf16 room for the row statistics it may save with S instead.
inline int64_t attention_probs_elems(const Exec& x, const cpu::AttentionShape& s, bool bf16_probs) {
#if defined(ERLANGSHEN_HAVE_CUDA)
  if (x.device == Device::CUDA) return cuda::attention_probs_elems(s, bf16_probs);
#endif
  (void)x, (void)bf16_probs;
  return static_cast<int64_t>(s.B) * s.NH * s.Tn * s.Tn;
}
// Elements of the `scratch` argument of attention_forward/backward on this device.
inline int64_t attention_scratch_elems(const Exec& x, const cpu::AttentionShape& s) {
#if defined(ERLANGSHEN_HAVE_CUDA)
  if (x.device == Device::CUDA) return cuda::attention_scratch_elems(s);
#endif
  return cpu::attention_scratch_elems(s);
}
template <class T>
void attention_backward(const Exec& x, Act<no_deduce_t<T>> dqkv, T* scratch, Act<const no_deduce_t<T>> dout,
                        Act<const no_deduce_t<T>> qkv, Act<const no_deduce_t<T>> probs, const uint8_t* valid,
                        const cpu::AttentionShape& s, const DropoutSpec& d) {
  if (dqkv.is_bf16() || dout.is_bf16() || qkv.is_bf16() || probs.is_bf16())
    ERL_BF16_ROUTE(attention_backward, dqkv, scratch, dout, qkv, probs, valid, s, d);
  ERL_DISPATCH(attention_backward, dqkv.f, scratch, dout.f, qkv.f, probs.f, valid, s, d);
}
// Fused attention (train.attention=flash): CUDA only, runtime/cuda/flash_attention.h. `stats` (B, NH, T, 2) takes
// the place of the saved probabilities; the backward also reads the forward's output. The CPU backend has none.
inline bool flash_attention_supported(const Exec& x, const cpu::AttentionShape& s) {
#if defined(ERLANGSHEN_HAVE_CUDA)
  if (x.device == Device::CUDA) return cuda::flash_attention_supported(cuda::Launch(x.stream, x.backend_context), s);
#endif
  (void)x, (void)s;
  return false;
}
inline int64_t flash_attention_scratch_elems(const cpu::AttentionShape& s) {
#if defined(ERLANGSHEN_HAVE_CUDA)
  return cuda::flash_attention_scratch_elems(s);
#else
  (void)s;
  return 0;
#endif
}
template <class T>
void flash_attention_forward(const Exec& x, Act<no_deduce_t<T>> out, T* stats, T* scratch,
                             Act<const no_deduce_t<T>> qkv, const uint8_t* valid, const cpu::AttentionShape& s,
                             const DropoutSpec& d) {
  if constexpr (std::is_same_v<T, float>) {
    if (x.device == Device::CUDA) {
      ERL_CUDA_CALL(flash_attention_forward, out, stats, scratch, qkv, valid, s, d);
      return;
    }
  }
  throw Error("flash attention runs on CUDA float models only (train.attention=flash needs train.device=cuda)");
}
template <class T>
void flash_attention_backward(const Exec& x, Act<no_deduce_t<T>> dqkv, T* scratch, Act<const no_deduce_t<T>> dout,
                              Act<const no_deduce_t<T>> out, Act<const no_deduce_t<T>> qkv, const T* stats,
                              const uint8_t* valid, const cpu::AttentionShape& s, const DropoutSpec& d) {
  if constexpr (std::is_same_v<T, float>) {
    if (x.device == Device::CUDA) {
      ERL_CUDA_CALL(flash_attention_backward, dqkv, scratch, dout, out, qkv, stats, valid, s, d);
      return;
    }
  }
  throw Error("flash attention runs on CUDA float models only (train.attention=flash needs train.device=cuda)");
}
// out (n) = resid + dropout(in) (resid optional). out and resid: a residual stream, stored as T or (both) in bf16.
template <class T>
void dropout_residual_forward(const Exec& x, Act<T> out, Act<const no_deduce_t<T>> resid,
                              Act<const no_deduce_t<T>> in, int64_t n, const DropoutSpec& d, int64_t offset) {
  if (out.is_bf16() || resid.is_bf16() || in.is_bf16())
    ERL_BF16_ROUTE(dropout_residual_forward, out, resid, in, n, d, offset);
  ERL_DISPATCH(dropout_residual_forward, out.f, resid.f, in.f, n, d, offset);
}
template <class T>
void dropout_residual_forward(const Exec& x, T* out, Act<const no_deduce_t<T>> resid, Act<const no_deduce_t<T>> in,
                              int64_t n, const DropoutSpec& d, int64_t offset) {
  dropout_residual_forward(x, Act<T>(out), resid, in, n, d, offset);
}
// dx (n) = dropout'(dout); dout T or bf16 (a bf16 residual gradient), dx T or bf16
template <class T>
void dropout_backward(const Exec& x, Act<T> dx, Act<const no_deduce_t<T>> dout, int64_t n, const DropoutSpec& d,
                      int64_t offset) {
  if (dx.is_bf16() || dout.is_bf16()) ERL_BF16_ROUTE(dropout_backward, dx, dout, n, d, offset);
  ERL_DISPATCH(dropout_backward, dx.f, dout.f, n, d, offset);
}
template <class T>
void dropout_backward(const Exec& x, Act<no_deduce_t<T>> dx, const T* dout, int64_t n, const DropoutSpec& d,
                      int64_t offset) {
  dropout_backward(x, dx, Act<const T>(dout), n, d, offset);
}
// a (n) = 0 in its storage (T, or bf16: all zero bits either way)
template <class T>
void zero(const Exec& x, Act<T> a, int64_t n) {
  if (a.is_bf16()) ERL_BF16_ROUTE(zero, a, n);
  fill(x, a.f, n, T(0));
}
// A pre-LN encoder's LayerNorms read a residual stream just formed, and each LayerNorm backward's dinp is the
// gradient the next op drops out. These pair the ops: the same results as the two calls one after the other, which
// is what they run except on CUDA, which fuses them (runtime/cuda/layernorm.cu: one pass over the stream fewer).
//   h (N, C) = resid + dropout(in) (resid optional);  out = LN(h as stored), mean, rstd
template <class T>
void dropout_residual_layernorm_forward(const Exec& x, Act<no_deduce_t<T>> h, Act<no_deduce_t<T>> out, T* mean,
                                        T* rstd, Act<const no_deduce_t<T>> resid, Act<const no_deduce_t<T>> in,
                                        const T* w, const T* b, int N, int C, double eps, const DropoutSpec& d,
                                        int64_t offset) {
  if constexpr (std::is_same_v<T, float>) {
    if (x.device == Device::CUDA) {
      ERL_CUDA_CALL(dropout_residual_layernorm_forward, h, out, mean, rstd, resid, in, w, b, N, C, eps, d, offset);
      return;
    }
  }
  dropout_residual_forward<T>(x, h, resid, in, static_cast<int64_t>(N) * C, d, offset);
  layernorm_forward<T>(x, out, mean, rstd, Act<const T>(h), w, b, N, C, eps);
}
//   dinp (N, C) += LN'(dout), dw / db accumulated (layernorm_backward);  dx = dropout'(dinp) (dx must not alias
//   dinp, dout or inp)
template <class T>
void layernorm_backward_dropout(const Exec& x, Act<no_deduce_t<T>> dinp, T* dw, T* db, Act<no_deduce_t<T>> dx,
                                Act<const no_deduce_t<T>> dout, Act<const no_deduce_t<T>> inp, const T* w,
                                const T* mean, const T* rstd, int N, int C, const DropoutSpec& d, int64_t offset) {
  if constexpr (std::is_same_v<T, float>) {
    if (x.device == Device::CUDA) {
      ERL_CUDA_CALL(layernorm_backward_dropout, dinp, dw, db, dx, dout, inp, w, mean, rstd, N, C, d, offset);
      return;
    }
  }
  layernorm_backward<T>(x, dinp, dw, db, dout, inp, w, mean, rstd, N, C);
  dropout_backward<T>(x, dx, Act<const T>(dinp), static_cast<int64_t>(N) * C, d, offset);
}
template <class T>
void ce_rowmax(const Exec& x, T* rowmax, const T* logits, int M, int Vl) {
  ERL_DISPATCH(ce_rowmax, rowmax, logits, M, Vl);
}
template <class T>
void ce_sumexp_target(const Exec& x, T* sumexp, T* target_logit, const T* logits, const T* rowmax,
                      const int32_t* targets, int M, int Vl, int v0) {
  ERL_DISPATCH(ce_sumexp_target, sumexp, target_logit, logits, rowmax, targets, M, Vl, v0);
}
template <class T>
void ce_backward(const Exec& x, T* dlogits, const T* logits, const T* rowmax, const T* sumexp, const int32_t* targets,
                 const T* dloss, int M, int Vl, int v0) {
  ERL_DISPATCH(ce_backward, dlogits, logits, rowmax, sumexp, targets, dloss, M, Vl, v0);
}
template <class T>
void gather_rows(const Exec& x, T* out, const T* inp, const int32_t* idx, int M, int C) {
  ERL_DISPATCH(gather_rows, out, inp, idx, M, C);
}
template <class T>
void scatter_add_rows(const Exec& x, T* dinp, const T* dout, const int32_t* idx, int M, int C) {
  ERL_DISPATCH(scatter_add_rows, dinp, dout, idx, M, C);
}
template <class T>
void adamw_update(const Exec& x, T* p, const T* g, T* m, T* v, int64_t n, double lr, double b1, double b2, double eps,
                  double wd, int64_t step, double gscale) {
  ERL_DISPATCH(adamw_update, p, g, m, v, n, lr, b1, b2, eps, wd, step, gscale);
}
template <class T>
double sum_squares(const Exec& x, const T* v, int64_t n) {
  if (x.device == Device::CUDA) {
    if constexpr (std::is_same_v<T, float>) {
#if defined(ERLANGSHEN_HAVE_CUDA)
      return cuda::sum_squares(cuda::Launch(x.stream, x.backend_context), v, n);
#else
      throw Error("this build has no CUDA backend");
#endif
    }
    throw Error("sum_squares: the CUDA backend runs float tensors only");
  }
  return cpu::sum_squares<T>(v, n);
}
// Multi-tensor AdamW and sum of squares over spans (runtime/flat_span.h; semantics in runtime/cpu/kernels.h): one
// launch on CUDA instead of one per tensor, and one host synchronisation for all the spans' sums.
template <class T>
void adamw_update_spans(const Exec& x, T* p, const T* g, T* m, T* v, bf16* compute_copy,
                        const std::vector<FlatSpan>& spans, double lr, double b1, double b2, double eps, double wd,
                        int64_t step, double gscale) {
  ERL_CHECK((compute_copy == nullptr || std::is_same_v<T, float>), "adamw_update_spans: a bf16 copy needs float weights");
  ERL_DISPATCH(adamw_update_spans, p, g, m, v, compute_copy, spans.data(), static_cast<int>(spans.size()), lr, b1, b2,
               eps, wd, step, gscale);
}
template <class T>
std::vector<double> sum_squares_spans(const Exec& x, const T* v, const std::vector<FlatSpan>& spans) {
  std::vector<double> out(spans.size());
  auto run = [&] { ERL_DISPATCH(sum_squares_spans, v, spans.data(), static_cast<int>(spans.size()), out.data()); };
  run();
  return out;
}
// sum_squares_spans with the sums left where the Exec runs (`out`: spans.size() doubles, device memory on CUDA),
// enqueued without a synchronisation: the same values, read later.
template <class T>
void sum_squares_spans_into(const Exec& x, const T* v, const std::vector<FlatSpan>& spans, double* out) {
  ERL_DISPATCH(sum_squares_spans_into, v, spans.data(), static_cast<int>(spans.size()), out);
}
template <class T>
void scale(const Exec& x, T* v, int64_t n, double s) {
  ERL_DISPATCH(scale, v, n, s);
}
template <class T>
void fill(const Exec& x, T* v, int64_t n, T value) {
  ERL_DISPATCH(fill, v, n, value);
}
template <class T>
void add_inplace(const Exec& x, T* y, const T* v, int64_t n) {
  ERL_DISPATCH(add_inplace, y, v, n);
}

}  // namespace ops

#undef ERL_DISPATCH
#undef ERL_BF16_ROUTE
#undef ERL_CUDA_CALL

}  // namespace erlangshen
