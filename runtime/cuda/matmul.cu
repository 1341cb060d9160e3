// Linear layers through cuBLASLt (row-major API on column-major BLAS: row-major X (r, c) is column-major X^T):
//   forward   out (N, OC) = inp (N, C) @ W (OC, C)^T + b     ->  C(OC, N) = op_T(W^T(col)) @ inp^T(col) + b
//   backward  dinp (N, C) = dout @ W                         ->  C(C, N)  = W^T(col) @ dout^T
//             dW (OC, C) += dout^T @ inp                     ->  C(C, OC) = inp^T @ op_T(dout^T)
//                                                                (or = : beta 0, a step's first micro-batch)
//             db (OC)    += sum_n dout                       ->  deterministic column sum (colsum.cuh); with a bf16
//                                                                dout, cuBLASLt's BGRADB epilogue on the dW GEMM
//                                                                (which reads dout anyway) where it runs
// The bias rides on the GEMM epilogue (CUBLASLT_EPILOGUE_BIAS); FFN-in can fuse bias + tanh GeLU as well.
// The MLP's output layer backward through the GeLU (act = gelu(pre)) in front of it, with bf16 dpre and pre:
//             dpre (N, C) = (dout @ W) * gelu_tanh'(pre)  ->  cuBLASLt's DGELU epilogue on the dgrad GEMM, aux = pre
//             (the GeLU's derivative applied to the fp32 sum in registers: no (N, C) gradient of act in memory)
// bf16 activation storage (runtime/act.h): inp, out, dout, dinp, act and pre may be bf16. The same GEMMs with
// those operands in bf16 (gemm.cuh: fp32 ones rounded into the staging, bf16 ones read in place, fp32
// accumulation, a bf16 output rounded once after the fp32 epilogue); db sums dout as stored.
#include <algorithm>

#include "runtime/cuda/activation.cuh"
#include "runtime/cuda/colsum.cuh"
#include "runtime/cuda/gemm.cuh"
#include "runtime/cuda/kernels.h"

namespace erlangshen::cuda {
namespace {

constexpr int kThreads = 256;

GemmArgs forward_args(void* out, const void* inp, const void* weight, int N, int C, int OC, bool accumulate) {
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
GemmArgs dgrad_args(void* dinp, const void* dout, const void* weight, int N, int C, int OC, bool accumulate) {
  GemmArgs g;
  g.m = C, g.n = N, g.k = OC;
  g.A = weight, g.lda = C;
  g.B = dout, g.ldb = OC;
  g.C = dinp, g.ldc = C;
  g.beta = accumulate ? 1.0f : 0.0f;
  return g;
}

// dW (OC, C) (+)= dout^T @ inp                 ->  C(C, OC) = inp^T @ op_T(dout^T)
GemmArgs wgrad_args(float* dweight, const void* dout, const void* inp, int N, int C, int OC, bool accumulate) {
  GemmArgs g;
  g.trans_b = true;
  g.m = C, g.n = OC, g.k = N;
  g.A = inp, g.lda = C;
  g.B = dout, g.ldb = OC;
  g.C = dweight, g.ldc = C;
  g.beta = accumulate ? 1.0f : 0.0f;
  return g;
}

// A GEMM with a bf16 operand or output: gemm() runs its epilogue in every case (gemm.cuh).
void gemm_bf16_storage(const Launch& l, const char* op, const GemmArgs& g) {
  ERL_CHECK(gemm(l, op, g), "cuda::" << op << ": GEMM epilogue not run");
}

// The weight-gradient GEMM w with dbias (OC) += sum_n dout formed by it: cuBLASLt's BGRADB epilogue sums op(B) =
// dout over the GEMM's k (the N rows) into the Context's epilogue vector, which is then added into dbias. Only
// where that is the sum of dout as stored (dout bf16, read in place: the bias gradient's semantics), outside
// deterministic mode (the epilogue's order of summation is cuBLASLt's) and where cuBLASLt runs it. Returns false,
// having done nothing, otherwise: the caller runs w alone and the column sum.
bool wgrad_with_bias_gradient(const Launch& l, const GemmArgs& w, float* dbias, int OC) {
  Context& ctx = need_context(l, "matmul_backward");
  const bool fuse = dbias && w.b_type == CUDA_R_16BF && !ctx.deterministic() && ctx.options().backward_epilogues;
  float* v = fuse ? ctx.epilogue_vector(size_t(OC)) : nullptr;
  if (v == nullptr) return false;
  GemmArgs g = w;
  g.epilogue = Epilogue::BiasGradB;
  g.bias = v;
  if (!gemm(l, "matmul_backward", g)) return false;
  add_inplace(l, dbias, v, OC);
  return true;
}

// MathMode::BF16 with both dinp and dweight and an fp32 dout: dout is rounded to bf16 once for the two GEMMs
// (gemm() would round it once per call), then W for dgrad and inp for wgrad (each when fp32; a bf16 weight - the
// model's compute copy - or inp is read in place) into the same second slot of the staging:
//   [dout16 (N OC)][W16 (OC C), then inp16 (N C)]
// The GEMMs' operands live in the staging, so they must have cuBLASLt algorithms (gemm.cuh): every dimension a
// multiple of 8 (bf16 tensor-core layouts) and the bf16 tensors they touch in place (a bf16 dinp, inp or weight)
// 16-byte aligned; other cases take gemm()'s per-call staging. A bf16 dout needs no rounding: per-call GEMMs then
// stage only an fp32 W and an fp32 inp.
bool matmul_backward_shared_dout(const Launch& l, Act<float> dinp, float* dweight, Act<const float> dout,
                                 Act<const float> inp, Act<const float> weight, int N, int C, int OC,
                                 bool accumulate_dinp, bool accumulate_dweight) {
  Context& ctx = need_context(l, "matmul_backward");
  if (ctx.math() != MathMode::BF16 || dinp.empty() || !dweight || dout.is_bf16() || N % 8 || C % 8 || OC % 8)
    return false;
  for (const void* p : {static_cast<const void*>(dinp.h), static_cast<const void*>(inp.h),
                        static_cast<const void*>(weight.h)})
    if (p != nullptr && !aligned16(p)) return false;
  const int64_t n_dout = int64_t(N) * OC;
  const int64_t n_other = std::max(weight.is_bf16() ? int64_t(0) : int64_t(OC) * C,
                                   inp.is_bf16() ? int64_t(0) : int64_t(N) * C);
  const int64_t other_offset = round_up_256(2 * n_dout);
  char* stage = static_cast<char*>(ctx.staging(static_cast<size_t>(other_offset + round_up_256(2 * n_other))));
  auto* dout16 = reinterpret_cast<uint16_t*>(stage);
  auto* other16 = reinterpret_cast<uint16_t*>(stage + other_offset);
  float_to_bf16(l, dout16, dout.f, n_dout);
  const void* weight16 = weight.h;
  if (!weight.is_bf16()) {
    float_to_bf16(l, other16, weight.f, int64_t(OC) * C);
    weight16 = other16;
  }
  GemmArgs g = dgrad_args(data_of(dinp), dout16, weight16, N, C, OC, accumulate_dinp);
  g.a_type = g.b_type = CUDA_R_16BF;
  g.c_type = type_of(dinp);
  gemm(l, "matmul_backward", g);
  const void* inp16 = inp.h;
  if (!inp.is_bf16()) {
    float_to_bf16(l, other16, inp.f, int64_t(N) * C);  // stream order: after the dgrad GEMM has read W
    inp16 = other16;
  }
  GemmArgs w = wgrad_args(dweight, dout16, inp16, N, C, OC, accumulate_dweight);
  w.a_type = w.b_type = CUDA_R_16BF;
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
  if (bias) {  // out (N, OC) += bias, in place
    const int64_t total = int64_t(N) * OC;
    ERL_KERNEL(grid_for(total, kThreads), kThreads, 0, stream_of(l), bias_store_kernel)(out, out, bias, total, OC);
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
                     const float* weight, int N, int C, int OC, bool accumulate_dinp, bool accumulate_dweight) {
  if (!matmul_backward_shared_dout(l, dinp, dweight, dout, inp, weight, N, C, OC, accumulate_dinp,
                                   accumulate_dweight)) {
    if (dinp) gemm(l, "matmul_backward", dgrad_args(dinp, dout, weight, N, C, OC, accumulate_dinp));
    if (dweight) gemm(l, "matmul_backward", wgrad_args(dweight, dout, inp, N, C, OC, accumulate_dweight));
  }
  if (dbias) colsum_add(l, "matmul_backward", dbias, N, OC, RowsOf{dout, OC});
}

// ---- bf16 activation storage ----
// With every tensor fp32 these are the fp32 ops above (under MathMode::BF16: the same semantics).

void matmul_forward(Launch l, Act<float> out, Act<const float> inp, Act<const float> weight, const float* bias, int N,
                    int C, int OC, bool accumulate) {
  need_bf16_storage_context(l, "matmul_forward");
  ERL_CHECK(!out.empty() && !inp.empty() && !weight.empty(), "cuda::matmul_forward: out, inp and weight are required");
  ERL_CHECK(!(accumulate && out.is_bf16()), "cuda::matmul_forward: accumulating into bf16 storage is not supported");
  if (!out.is_bf16() && !inp.is_bf16() && !weight.is_bf16())
    return matmul_forward(l, out.f, inp.f, weight.f, bias, N, C, OC, accumulate);
  // C(OC, N) = W16 @ inp^T (+ bias on the epilogue, fp32), D in out's type
  GemmArgs g = forward_args(data_of(out), data_of(inp), data_of(weight), N, C, OC, accumulate);
  g.a_type = type_of(weight);
  g.b_type = type_of(inp);
  g.c_type = type_of(out);
  if (bias) {
    g.epilogue = Epilogue::Bias;
    g.bias = bias;
  }
  gemm_bf16_storage(l, "matmul_forward", g);
}

void matmul_bias_gelu_forward(Launch l, Act<float> act, Act<float> pre, Act<const float> inp,
                              Act<const float> weight, const float* bias, int N, int C, int OC, Activation kind) {
  need_bf16_storage_context(l, "matmul_bias_gelu_forward");
  ERL_CHECK(!act.empty() && !pre.empty() && !inp.empty() && !weight.empty(),
            "cuda::matmul_bias_gelu_forward: act, pre, inp and weight are required");
  ERL_CHECK(act.is_bf16() == pre.is_bf16(), "cuda::matmul_bias_gelu_forward: act and pre must have the same storage");
  ERL_CHECK(bias != nullptr, "cuda::matmul_bias_gelu_forward: bf16 storage needs the bias");
  if (!act.is_bf16() && !inp.is_bf16() && !weight.is_bf16()) {
    if (kind == Activation::GeluTanh) return matmul_bias_gelu_forward(l, act.f, pre.f, inp.f, weight.f, bias, N, C, OC);
    matmul_forward(l, pre.f, inp.f, weight.f, nullptr, N, C, OC, false);
    return bias_gelu_forward(l, act.f, pre.f, bias, N, OC, kind);
  }
  // C(OC, N) = W16 @ inp^T; aux (pre) = C + bias, D (act) = gelu(C + bias), both in act's type: tanh GeLU on
  // cuBLASLt's GELU_AUX_BIAS epilogue, exact GeLU in gemm()'s separate pass (no such cuBLASLt epilogue)
  GemmArgs g = forward_args(data_of(act), data_of(inp), data_of(weight), N, C, OC, false);
  g.a_type = type_of(weight);
  g.b_type = type_of(inp);
  g.c_type = type_of(act);
  g.epilogue = kind == Activation::GeluTanh ? Epilogue::GeluAuxBias : Epilogue::GeluExactAuxBias;
  g.bias = bias;
  g.aux = data_of(pre);
  g.ldaux = OC;
  gemm_bf16_storage(l, "matmul_bias_gelu_forward", g);
}

void matmul_backward(Launch l, Act<float> dinp, float* dweight, float* dbias, Act<const float> dout,
                     Act<const float> inp, Act<const float> weight, int N, int C, int OC, bool accumulate_dinp,
                     bool accumulate_dweight) {
  need_bf16_storage_context(l, "matmul_backward");
  ERL_CHECK(!dout.empty() && (!dweight || !inp.empty()) && (dinp.empty() || !weight.empty()),
            "cuda::matmul_backward: dout (and inp for dweight, weight for dinp) required");
  ERL_CHECK(!(accumulate_dinp && dinp.is_bf16()),
            "cuda::matmul_backward: accumulating into bf16 storage is not supported");
  if (!dinp.is_bf16() && !dout.is_bf16() && !inp.is_bf16() && !weight.is_bf16())
    return matmul_backward(l, dinp.f, dweight, dbias, dout.f, inp.f, weight.f, N, C, OC, accumulate_dinp,
                           accumulate_dweight);
  if (!matmul_backward_shared_dout(l, dinp, dweight, dout, inp, weight, N, C, OC, accumulate_dinp,
                                   accumulate_dweight)) {
    if (!dinp.empty()) {  // C(C, N) = W16 @ dout^T, D in dinp's type
      GemmArgs g = dgrad_args(data_of(dinp), data_of(dout), data_of(weight), N, C, OC, accumulate_dinp);
      g.a_type = type_of(weight);
      g.b_type = type_of(dout);
      g.c_type = type_of(dinp);
      gemm_bf16_storage(l, "matmul_backward", g);
    }
    if (dweight) {  // C(C, OC) += inp^T @ op_T(dout^T), fp32; with dbias += sum_n dout where it can
      GemmArgs w = wgrad_args(dweight, data_of(dout), data_of(inp), N, C, OC, accumulate_dweight);
      w.a_type = type_of(inp);
      w.b_type = type_of(dout);
      if (wgrad_with_bias_gradient(l, w, dbias, OC)) dbias = nullptr;  // done
      else gemm_bf16_storage(l, "matmul_backward", w);
    }
  }
  if (dbias) visit(dout, [&](auto* d) { colsum_add(l, "matmul_backward", dbias, N, OC, rows_of(d, OC)); });
}

void matmul_gelu_backward(Launch l, Act<float> dpre, float* dweight, float* dbias, float* dbias_pre,
                          Act<const float> dout, Act<const float> act, Act<const float> weight, Act<const float> pre,
                          int N, int C, int OC, Activation kind, bool accumulate_dweight) {
  const Context& ctx = need_bf16_storage_context(l, "matmul_gelu_backward");
  ERL_CHECK(!dpre.empty() && !dout.empty() && !act.empty() && !weight.empty() && !pre.empty(),
            "cuda::matmul_gelu_backward: dpre, dout, act, weight and pre are required");
  if (kind == Activation::GeluTanh && dpre.is_bf16() && pre.is_bf16() && ctx.options().backward_epilogues) {
    // C(C, N) = (W16 @ dout^T) * gelu'(aux), aux = pre (C, N) column-major, ld C: read, never written
    GemmArgs g = dgrad_args(dpre.h, data_of(dout), data_of(weight), N, C, OC, false);
    g.a_type = type_of(weight);
    g.b_type = type_of(dout);
    g.c_type = CUDA_R_16BF;
    g.epilogue = Epilogue::DGelu;
    g.aux = const_cast<bf16*>(pre.h);  // NOLINT: GemmArgs::aux is an output for GeluAuxBias; DGelu only reads it
    g.ldaux = C;
    if (gemm(l, "matmul_gelu_backward", g)) {
      matmul_backward(l, Act<float>(), dweight, dbias, dout, act, weight, N, C, OC, false, accumulate_dweight);
      if (dbias_pre) colsum_add(l, "matmul_gelu_backward", dbias_pre, N, C, rows_of(device_bf16(dpre.h), C));
      return;
    }
  }
  matmul_backward(l, dpre, dweight, dbias, dout, act, weight, N, C, OC, false, accumulate_dweight);
  bias_gelu_backward(l, dpre, dbias_pre, Act<const float>(dpre), pre, N, C, kind);
}

}  // namespace erlangshen::cuda
