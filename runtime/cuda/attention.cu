// Multi-head self-attention for one TP rank's heads (seq <= 512 tested; any T works). Layouts (row-major):
//   qkv (B, T, 3, NH, HS)   probs (B, NH, T, T) saved, before dropout   out (B, T, NH*HS)
// For each head h, one strided-batched cuBLASLt GEMM over the B samples (the stride between samples is uniform
// for a fixed head, so NH calls per product instead of B x NH):
//   S = Q K^T / sqrt(HS)                              GEMM, fp32: straight into fp32 probs, else into the scratch
//   P = softmax(S) with padded keys masked (saved);   Pd = dropout(P)   one fused row kernel over all B NH T rows
//       (bf16 probs, an [act] tensor under bf16 storage: P rounded once, and Pd formed from the rounded P, so that
//       the backward, which reads the stored P, recomputes the same Pd)
//   O = Pd V                                          GEMM into out
// Backward (Pd recomputed from P and Philox, nothing else stored):
//   dPd = dO V^T;  dP = dropout'(dPd);  dS = P * (dP - rowsum(P * dP)), Pd = dropout(P)   (one fused row kernel)
//   dV = Pd^T dO
//   dQ = dS K / sqrt(HS);  dK = dS^T Q / sqrt(HS)
// MathMode::FP32: every operand fp32 (SGEMM). MathMode::BF16 (T and HS multiples of 8): Q/K/V and dO are rounded
// to bf16 once per call, the row kernels write Pd and dS directly in bf16, S comes out of its GEMM in fp32 and
// softmax runs in fp32; dPd comes out in bf16 (rounded once: half its traffic; the whole-model gradients move by
// ~1e-4 relative, test_model_gpu_flash). With bf16 probs (bf16 storage) S comes out in bf16 too, as bf16
// training's unfused attention has it (the softmax still fp32): half the traffic of the largest tensor again; the
// whole model's distance to fp32 storage stayed at 3e-3 relative (3.1e-3 with, 3.4e-3 without, on the CUDA
// emulation: test_model_gpu_bf16), though against the flash kernels' fp32 S it is one more rounding of the logits,
// which softmax turns into an absolute error. All GEMMs accumulate in fp32.
// bf16 activation storage (runtime/act.h; qkv, out, dout, dqkv each fp32 or bf16; MathMode::BF16 required): the
// bf16-math algorithm above, with a bf16 qkv / dout read in place as the GEMM operand (no rounding pass: it already
// is the bf16 value), and a bf16 out / dqkv written by the O, dV, dQ, dK GEMMs as bf16 D (the fp32 accumulation
// rounded once; dqkv's Q/K/V slots are column offsets within its 3C-wide rows, ld 3C). T or HS not a multiple of
// 8 (small test shapes): the bf16 inputs are widened into the scratch, the fp32-storage op runs (on fp32 operands:
// with these shapes bf16 math does not keep bf16 copies either) into an fp32 temporary, and that is rounded into
// the bf16 outputs: the same semantics, by the simplest route.
// Dropout element (b, h, i, j) uses global index ((sample_offset + b) * total_heads + head_offset + h) * T*T + i*T + j,
// exactly as the CPU backend.
// Scratch (floats; the bf16 buffers take half a float per element), TT = T*T, C = NH*HS, N = B*T:
//   T and HS multiples of 8 (2 B NH TT + 2 N C floats):
//     [0, B NH TT)          Pd  (fp32)  |  Pd16 + dS16 (bf16)
//     [B NH TT, 2 B NH TT)  backward: dP / dS (fp32, dS in place)  |  dPd16 (bf16) in its first half;
//                           forward with bf16 probs: S (fp32)
//     [2 B NH TT, + 2 N C)  qkv16 (N 3C bf16) + dO16 (N C bf16)   (bf16 math with that operand in fp32 storage)
//   otherwise (bf16 math runs fp32 operands here, so the rounded copies are not needed), each slot starting on a
//   256-byte boundary of the scratch:
//     [0, 2 B NH TT)        Pd, dP / dS (fp32); the forward's S (fp32) in the second half with bf16 probs
//     then qkv32 (N 3C), dO32 or out32 (N C), dqkv32 (N 3C): the bf16-storage fallback's fp32 copies
// The saved state may be S instead of P (ContextOptions::attention_saves_scores, with bf16 probs and the register
// row kernels): S and each row's (max, 1 / sum), from which the backward recomputes P bit for bit. With it the
// forward may run as one kernel (ContextOptions::fused_attention_forward, attention_fused_forward.h) that saves the
// same state, and for T <= 128 the backward too (ContextOptions::fused_attention_backward, attention_fused_backward.h).
#include <cuda_bf16.h>

#include <cmath>
#include <initializer_list>

#include "runtime/cuda/attention_fused_backward.h"
#include "runtime/cuda/attention_fused_forward.h"
#include "runtime/cuda/attention_rows.cuh"
#include "runtime/cuda/gemm.cuh"
#include "runtime/cuda/storage.cuh"

namespace erlangshen::cuda {
namespace {

using namespace attention_rows;  // NOLINT: the row kernels and their launchers

// Whether bf16 math keeps its operands in bf16 buffers (Q/K/V, dO, Pd, dS): T and HS multiples of 8, so that every
// bf16 operand's leading dimension, head offset and sample stride is a multiple of 16 bytes (cuBLASLt's bf16
// kernels). Otherwise bf16 math runs on the fp32 operands (gemm() rounds them in its staging).
bool bf16_operands(const AttentionShape& s) { return s.Tn % 8 == 0 && s.HS % 8 == 0; }

// The operands of one call as the GEMMs read them (Q/K/V, dO, Pd, dS: one element type), and the result they
// write (out in the forward, dqkv in the backward: fp32 or bf16 storage).
struct Operands {
  cudaDataType_t type;   // CUDA_R_32F or CUDA_R_16BF
  size_t elem;           // bytes per element
  const char* qkv;       // (B, T, 3C)
  const char* dout;      // (B, T, C)
  char* pd;              // (B, NH, T, T)
  char* ds;              // (B, NH, T, T)
  cudaDataType_t res_type;
  size_t res_elem;
  char* res;             // out (B, T, C) or dqkv (B, T, 3C)
};

// C(m, n)[b] = alpha * op(A)[b] op(B)[b], batch over samples; C in c_type (a bf16 C is rounded once).
void sample_gemm(const Launch& l, const char* op, cudaDataType_t ab, bool ta, bool tb, int m, int n, int k, float alpha,
                 const void* A, int lda, int64_t sa, const void* B, int ldb, int64_t sb, void* C, cudaDataType_t ct,
                 int ldc, int64_t sc, int batch) {
  GemmArgs g;
  g.trans_a = ta, g.trans_b = tb;
  g.m = m, g.n = n, g.k = k;
  g.alpha = alpha;
  g.a_type = g.b_type = ab;
  g.c_type = ct;
  g.A = A, g.lda = lda, g.stride_a = sa;
  g.B = B, g.ldb = ldb, g.stride_b = sb;
  g.C = C, g.ldc = ldc, g.stride_c = sc;
  g.batch = batch;
  gemm(l, op, g);
}

// Scratch carve-up (header comment). bf16: bf16 copies of an fp32 qkv (and dout) made here; bf16 storage read in
// place. res: the result tensor (out or dqkv) as stored. A tensor in bf16 storage needs bf16 (the callers make sure).
Operands operands(const Launch& l, const char* op, float* scratch, Act<const float> qkv, Act<const float> dout,
                  Act<float> res, const AttentionShape& s, bool bf16) {
  ERL_CHECK(bf16 || (!qkv.is_bf16() && !dout.is_bf16() && !res.is_bf16()),
            "cuda::" << op << ": bf16 storage reached the fp32-operand attention");
  const int64_t BNTT = static_cast<int64_t>(s.B) * s.NH * s.Tn * s.Tn;
  const int64_t N3C = static_cast<int64_t>(s.B) * s.Tn * 3 * s.NH * s.HS;
  Operands o{};
  o.res_type = type_of(res);
  o.res_elem = res.is_bf16() ? 2 : sizeof(float);
  o.res = static_cast<char*>(data_of(res));
  if (!bf16) {
    o.type = CUDA_R_32F, o.elem = sizeof(float);
    o.qkv = reinterpret_cast<const char*>(qkv.f);
    o.dout = reinterpret_cast<const char*>(dout.f);
    o.pd = reinterpret_cast<char*>(scratch);
    o.ds = reinterpret_cast<char*>(scratch + BNTT);
    return o;
  }
  auto* pd16 = reinterpret_cast<uint16_t*>(scratch);
  auto* ds16 = pd16 + BNTT;
  auto* qkv16 = reinterpret_cast<uint16_t*>(scratch + 2 * BNTT);
  auto* dout16 = qkv16 + N3C;
  o.type = CUDA_R_16BF, o.elem = 2;
  o.qkv = reinterpret_cast<const char*>(bf16_operand(l, qkv, qkv16, N3C));
  // dout: none in the forward (an empty fp32 Act)
  o.dout = dout.is_bf16() || dout.f ? reinterpret_cast<const char*>(bf16_operand(l, dout, dout16, N3C / 3))
                                    : reinterpret_cast<const char*>(dout16);
  o.pd = reinterpret_cast<char*>(pd16);
  o.ds = reinterpret_cast<char*>(ds16);
  return o;
}

// What forward and backward share: the math and dropout constants, the operands, and head h of every sample as
// a strided batch of column-major views (see the header comment):
//   q/k/v: (HS, T), ld 3C, sample stride T*3C;  out/dout: (HS, T), ld C, stride T*C;  T x T blocks: ld T, stride NH*TT.
// The result (res: out or dqkv) has the layout of out or qkv in its own element type.
struct Call {
  int T, HS, NH, C;
  float scale, keep_scale;
  uint32_t threshold;
  bool drop, bf16, write_pd;  // write_pd: Pd has its own buffer (dropout, bf16 operands or bf16 probs); else
                              // O = P V from the fp32 probs
  int64_t TT, rows, s_qkv, s_o, s_tt;
  RowGeometry geo;
  Operands o;

  Call(const Launch& l, const char* op, float* scratch, Act<const float> qkv, Act<const float> dout, Act<float> res,
       bool probs_bf16, const AttentionShape& s, const DropoutSpec& dropout)
      : T(s.Tn), HS(s.HS), NH(s.NH), C(s.NH * s.HS), scale(1.0f / std::sqrt(static_cast<float>(s.HS))),
        keep_scale(1.0f / (1.0f - dropout.p)), threshold(dropout_threshold(dropout.p)), drop(dropout.p > 0.0f),
        bf16(need_context(l, op).math() == MathMode::BF16 && bf16_operands(s)),
        write_pd(drop || bf16 || probs_bf16), TT(static_cast<int64_t>(T) * T),
        rows(static_cast<int64_t>(s.B) * NH * T),
        s_qkv(static_cast<int64_t>(T) * 3 * C), s_o(static_cast<int64_t>(T) * C), s_tt(NH * TT),
        geo{s.Tn, s.NH, s.total_heads > 0 ? s.total_heads : s.NH, s.head_offset, s.sample_offset},
        o(operands(l, op, scratch, qkv, dout, res, s, bf16)) {}

  // Element offsets of head h: Q/K/V (which = 0/1/2) in qkv, the head's columns in out/dout, its T x T block.
  int64_t qkv_off(int h, int which) const { return static_cast<int64_t>(which) * C + static_cast<int64_t>(h) * HS; }
  int64_t o_off(int h) const { return static_cast<int64_t>(h) * HS; }
  int64_t tt_off(int h) const { return h * TT; }
  // `off` elements of the operands' type past `base`.
  const char* at(const char* base, int64_t off) const { return base + off * static_cast<int64_t>(o.elem); }
  // `off` elements of the result's type past its start.
  char* res_at(int64_t off) const { return o.res + off * static_cast<int64_t>(o.res_elem); }
  // f(p) with a Pd / dS buffer as the element type the GEMMs read (bf16 or fp32).
  template <class F>
  void as_operand(char* p, F&& f) const {
    if (bf16) f(reinterpret_cast<__nv_bfloat16*>(p));
    else f(reinterpret_cast<float*>(p));
  }
};

// bf16 S (the QK^T GEMM's output rounded once) and the register row kernels: bf16 probs, bf16 operands, rows the
// register kernels take. The forward and the backward decide it alike.
bool scores_in_bf16(const Call& c, const void* probs_h, const float* scratch, const AttentionShape& s) {
  const float* S = scratch + static_cast<int64_t>(s.B) * c.NH * c.TT;
  return probs_h != nullptr && c.bf16 && register_rows(c.T, {S, probs_h, c.o.pd});
}

// Where S is bf16 and the Context keeps it (ContextOptions::attention_saves_scores), the saved state is S itself
// followed by its row statistics (max, 1 / sum: B NH T float2 after the B NH T T bf16 scores; attention_probs_elems),
// and the backward recomputes P from them: the same bits as saving P, one write of the B x NH x T x T tensor less.
// s16: scores_in_bf16's answer.
float2* saved_row_stats(const Launch& l, const Call& c, const void* probs_h, bool s16, const AttentionShape& s) {
  if (!s16 || !need_context(l, "attention").options().attention_saves_scores) return nullptr;
  return reinterpret_cast<float2*>(static_cast<char*>(const_cast<void*>(probs_h)) +
                                   sizeof(bf16) * static_cast<size_t>(s.B) * c.NH * c.TT);
}

void forward(const Launch& l, Act<float> out, Act<float> probs, float* scratch, Act<const float> qkv,
             const uint8_t* key_valid, const AttentionShape& s, const DropoutSpec& dropout) {
  const Call c(l, "attention_forward", scratch, qkv, Act<const float>(), out, probs.is_bf16(), s, dropout);
  const int T = c.T, HS = c.HS, C = c.C;
  // S: fp32 into the fp32 probs themselves (normalised in place); with bf16 probs into the scratch's second T x T
  // block (header comment), in bf16 where the bf16 operands and the register row kernels run (the QK^T GEMM's
  // output rounded once, as bf16 training's unfused attention has it; the softmax stays fp32), else fp32; and when
  // the scores are the saved state, into the bf16 probs themselves.
  const bool s16 = scores_in_bf16(c, probs.h, scratch, s);
  float2* stats = saved_row_stats(l, c, probs.h, s16, s);
  float* S = stats ? reinterpret_cast<float*>(probs.h)
                   : probs.is_bf16() ? scratch + static_cast<int64_t>(s.B) * c.NH * c.TT : probs.f;
  if (stats && need_context(l, "attention_forward").options().fused_attention_forward &&
      fused_attention_forward_supported(s)) {  // the same saved state in one kernel
    fused_attention_forward(l, out, reinterpret_cast<uint16_t*>(S), reinterpret_cast<float*>(stats),
                            reinterpret_cast<const uint16_t*>(c.o.qkv), key_valid, s, dropout);
    return;
  }
  char* S_bytes = reinterpret_cast<char*>(S);
  const int64_t s_elem = s16 ? 2 : sizeof(float);
  for (int h = 0; h < c.NH; ++h)  // S^T(col) (T_j, T_i) = op_T(K) Q  ==  row-major S (T_i, T_j)
    sample_gemm(l, "attention_forward", c.o.type, true, false, T, T, HS, c.scale, c.at(c.o.qkv, c.qkv_off(h, 1)), 3 * C,
                c.s_qkv, c.at(c.o.qkv, c.qkv_off(h, 0)), 3 * C, c.s_qkv, S_bytes + c.tt_off(h) * s_elem,
                s16 ? CUDA_R_16BF : CUDA_R_32F, T, c.s_tt, s.B);
  visit(probs, [&](auto* p) {
    c.as_operand(c.o.pd, [&](auto* pd) {
      auto rows = [&](auto* scores) {
        softmax_dropout(l, c.rows, scores, p, pd, stats, key_valid, c.geo, dropout.key, c.threshold, c.keep_scale,
                        c.drop, c.write_pd);
      };
      if (s16) rows(reinterpret_cast<__nv_bfloat16*>(S));
      else rows(S);
    });
  });
  const char* pd = c.write_pd ? c.o.pd : reinterpret_cast<const char*>(probs.f);
  for (int h = 0; h < c.NH; ++h)  // O^T(col) (HS, T_i) = V^T(col) Pd^T(col)
    sample_gemm(l, "attention_forward", c.o.type, false, false, HS, T, T, 1.0f, c.at(c.o.qkv, c.qkv_off(h, 2)), 3 * C,
                c.s_qkv, c.at(pd, c.tt_off(h)), T, c.s_tt, c.res_at(c.o_off(h)), c.o.res_type, C, c.s_o, s.B);
}

void backward(const Launch& l, Act<float> dqkv, float* scratch, Act<const float> dout, Act<const float> qkv,
              Act<const float> probs, const uint8_t* key_valid, const AttentionShape& s, const DropoutSpec& dropout) {
  const Call c(l, "attention_backward", scratch, qkv, dout, dqkv, probs.is_bf16(), s, dropout);
  const int T = c.T, HS = c.HS, C = c.C;
  const float2* stats = saved_row_stats(l, c, probs.h, scores_in_bf16(c, probs.h, scratch, s), s);
  if (stats && need_context(l, "attention_backward").options().fused_attention_backward &&
      fused_attention_backward_supported(s)) {  // short sequences: the whole backward in one kernel
    fused_attention_backward(l, dqkv, reinterpret_cast<const uint16_t*>(probs.h), reinterpret_cast<const float*>(stats),
                             reinterpret_cast<const uint16_t*>(c.o.qkv), reinterpret_cast<const uint16_t*>(c.o.dout),
                             key_valid, s, dropout);
    return;
  }
  // dPd: fp32 (-> dS in place), or with bf16 operands bf16, rounded once, into the same slot
  float* dP = scratch + static_cast<int64_t>(s.B) * c.NH * c.TT;
  auto* dP16 = reinterpret_cast<__nv_bfloat16*>(dP);
  for (int h = 0; h < c.NH; ++h)  // dPd row-major (T_i, T_j) == col-major (T_j, T_i) = op_T(V^T(col)) dO^T(col)
    sample_gemm(l, "attention_backward", c.o.type, true, false, T, T, HS, 1.0f, c.at(c.o.qkv, c.qkv_off(h, 2)), 3 * C,
                c.s_qkv, c.at(c.o.dout, c.o_off(h)), C, c.s_o,
                c.bf16 ? static_cast<void*>(dP16 + c.tt_off(h)) : static_cast<void*>(dP + c.tt_off(h)),
                c.bf16 ? CUDA_R_16BF : CUDA_R_32F, T, c.s_tt, s.B);
  // dS goes to o.ds: its own bf16 buffer, or (fp32) the dP buffer itself, in place. The same row pass recomputes Pd
  // (dropout of P) into o.pd when the forward wrote one; P itself from S when the forward saved S.
  visit(probs, [&](const auto* p) {
    c.as_operand(c.o.ds, [&](auto* ds) {
      auto* pd = c.write_pd ? reinterpret_cast<decltype(ds)>(c.o.pd) : nullptr;
      if (c.bf16)
        softmax_backward(l, c.rows, ds, pd, static_cast<const __nv_bfloat16*>(dP16), p, stats, key_valid, c.geo,
                         dropout.key, c.threshold, c.keep_scale, c.drop);
      else
        softmax_backward(l, c.rows, ds, pd, static_cast<const float*>(dP), p, stats, key_valid, c.geo, dropout.key,
                         c.threshold, c.keep_scale, c.drop);
    });
  });
  const char* pd = c.write_pd ? c.o.pd : reinterpret_cast<const char*>(probs.f);
  for (int h = 0; h < c.NH; ++h)  // dV^T(col) (HS, T_j) = dO^T(col) (HS, T_i) @ Pd (T_i, T_j)
    sample_gemm(l, "attention_backward", c.o.type, false, true, HS, T, T, 1.0f, c.at(c.o.dout, c.o_off(h)), C, c.s_o,
                c.at(pd, c.tt_off(h)), T, c.s_tt, c.res_at(c.qkv_off(h, 2)), c.o.res_type, 3 * C, c.s_qkv, s.B);
  for (int h = 0; h < c.NH; ++h) {
    // dQ^T(col) (HS, T_i) = scale * K^T(col) (HS, T_j) @ dS^T (T_j, T_i)
    sample_gemm(l, "attention_backward", c.o.type, false, false, HS, T, T, c.scale, c.at(c.o.qkv, c.qkv_off(h, 1)),
                3 * C, c.s_qkv, c.at(c.o.ds, c.tt_off(h)), T, c.s_tt, c.res_at(c.qkv_off(h, 0)), c.o.res_type, 3 * C,
                c.s_qkv, s.B);
    // dK^T(col) (HS, T_j) = scale * Q^T(col) (HS, T_i) @ dS (T_i, T_j)
    sample_gemm(l, "attention_backward", c.o.type, false, true, HS, T, T, c.scale, c.at(c.o.qkv, c.qkv_off(h, 0)),
                3 * C, c.s_qkv, c.at(c.o.ds, c.tt_off(h)), T, c.s_tt, c.res_at(c.qkv_off(h, 1)), c.o.res_type, 3 * C,
                c.s_qkv, s.B);
  }
}

// ---- bf16 storage ----

// Floats rounded up to a 256-byte boundary (64 floats): the fallback's slots keep cuBLASLt's preferred alignment.
int64_t round_up_64(int64_t floats) { return (floats + 63) / 64 * 64; }

// The fallback's fp32 copies when T or HS is not a multiple of 8 (header comment), as float offsets into the scratch.
struct FallbackSlots {
  int64_t nc, qkv, second, dqkv, end;  // nc = N C;  second: dO32 (backward) or out32 (forward)
  explicit FallbackSlots(const AttentionShape& s) {
    const int64_t BNTT = static_cast<int64_t>(s.B) * s.NH * s.Tn * s.Tn;
    nc = static_cast<int64_t>(s.B) * s.Tn * s.NH * s.HS;
    qkv = round_up_64(2 * BNTT);
    second = qkv + round_up_64(3 * nc);
    dqkv = second + round_up_64(nc);
    end = dqkv + round_up_64(3 * nc);
  }
};

// The fp32 values of a tensor: its own fp32 storage, or its bf16 storage widened (exact) into `slot`.
const float* fp32_values(const Launch& l, Act<const float> a, float* slot, int64_t n) {
  if (!a.is_bf16()) return a.f;
  bf16_to_float(l, slot, reinterpret_cast<const uint16_t*>(a.h), n);
  return slot;
}

// Where an fp32 result is written before rounding into bf16 storage: the tensor itself when fp32, else `slot`.
float* fp32_result(Act<float> a, float* slot) { return a.is_bf16() ? slot : a.f; }

// The fp32 result `v` rounded once into a's bf16 storage (nothing to do for fp32 storage: v is a.f).
void store_result(const Launch& l, Act<float> a, const float* v, int64_t n) {
  if (a.is_bf16()) float_to_bf16(l, reinterpret_cast<uint16_t*>(a.h), v, n);
}

// Context check of the bf16-storage entry points; true when the bf16 operands are read and written in place (the
// main path), false for the fallback. On the main path every bf16 tensor must start on a 16-byte boundary (with T
// and HS multiples of 8 all its head views then do); the fallback reads and writes them element-wise, any alignment.
bool bf16_in_place(const Launch& l, const char* op, const AttentionShape& s,
                   std::initializer_list<const void*> bf16_tensors) {
  need_bf16_storage_context(l, op);
  if (!bf16_operands(s)) return false;
  for (const void* p : bf16_tensors)
    ERL_CHECK(p == nullptr || aligned16(p), "cuda::" << op << ": a bf16 attention tensor must be 16-byte aligned");
  return true;
}

}  // namespace

int64_t attention_probs_elems(const AttentionShape& s, bool bf16_probs) {
  const int64_t rows = static_cast<int64_t>(s.B) * s.NH * s.Tn;
  return rows * s.Tn + (bf16_probs ? 4 * rows : 0);  // + the saved row statistics: a float2 a row, in bf16 units
}

int64_t attention_scratch_elems(const AttentionShape& s) {
  if (!bf16_operands(s)) return FallbackSlots(s).end;  // odd shapes (tests): room for the bf16-storage fallback
  const int64_t B = s.B, TT = static_cast<int64_t>(s.Tn) * s.Tn, C = static_cast<int64_t>(s.NH) * s.HS;
  return 2 * B * s.NH * TT + 2 * B * s.Tn * C;
}

void attention_forward(Launch l, float* out, float* probs, float* scratch, const float* qkv, const uint8_t* key_valid,
                       const AttentionShape& s, const DropoutSpec& dropout) {
  forward(l, out, probs, scratch, qkv, key_valid, s, dropout);
}

void attention_backward(Launch l, float* dqkv, float* scratch, const float* dout, const float* qkv, const float* probs,
                        const uint8_t* key_valid, const AttentionShape& s, const DropoutSpec& dropout) {
  backward(l, dqkv, scratch, dout, qkv, probs, key_valid, s, dropout);
}

void attention_forward(Launch l, Act<float> out, Act<float> probs, float* scratch, Act<const float> qkv,
                       const uint8_t* key_valid, const AttentionShape& s, const DropoutSpec& dropout) {
  if (!out.is_bf16() && !qkv.is_bf16() && !probs.is_bf16())
    return attention_forward(l, out.f, probs.f, scratch, qkv.f, key_valid, s, dropout);
  if (bf16_in_place(l, "attention_forward", s, {out.h, qkv.h, probs.h}))
    return forward(l, out, probs, scratch, qkv, key_valid, s, dropout);
  const FallbackSlots f(s);
  const float* q = fp32_values(l, qkv, scratch + f.qkv, 3 * f.nc);
  float* o = fp32_result(out, scratch + f.second);
  forward(l, o, probs, scratch, q, key_valid, s, dropout);  // fp32 operands (and S): scratch [0, 2 B NH TT) only
  store_result(l, out, o, f.nc);
}

void attention_backward(Launch l, Act<float> dqkv, float* scratch, Act<const float> dout, Act<const float> qkv,
                        Act<const float> probs, const uint8_t* key_valid, const AttentionShape& s,
                        const DropoutSpec& dropout) {
  if (!dqkv.is_bf16() && !dout.is_bf16() && !qkv.is_bf16() && !probs.is_bf16())
    return attention_backward(l, dqkv.f, scratch, dout.f, qkv.f, probs.f, key_valid, s, dropout);
  if (bf16_in_place(l, "attention_backward", s, {dqkv.h, dout.h, qkv.h, probs.h}))
    return backward(l, dqkv, scratch, dout, qkv, probs, key_valid, s, dropout);
  const FallbackSlots f(s);
  const float* q = fp32_values(l, qkv, scratch + f.qkv, 3 * f.nc);
  const float* d = fp32_values(l, dout, scratch + f.second, f.nc);
  float* dq = fp32_result(dqkv, scratch + f.dqkv);
  backward(l, dq, scratch, d, q, probs, key_valid, s, dropout);  // fp32 operands: scratch [0, 2 B NH TT) only
  store_result(l, dqkv, dq, 3 * f.nc);
}

}  // namespace erlangshen::cuda
