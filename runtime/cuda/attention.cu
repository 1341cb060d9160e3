// Multi-head self-attention for one TP rank's heads (seq <= 512 tested; any T works). Layouts (row-major):
//   qkv (B, T, 3, NH, HS)   probs (B, NH, T, T) saved, before dropout   out (B, T, NH*HS)
// For each head h, one strided-batched cuBLASLt GEMM over the B samples (the stride between samples is uniform
// for a fixed head, so NH calls per product instead of B x NH):
//   S = Q K^T / sqrt(HS)                              GEMM, written straight into probs
//   P = softmax(S) with padded keys masked (saved);   Pd = dropout(P)   one fused row kernel over all B NH T rows
//   O = Pd V                                          GEMM into out
// Backward (Pd recomputed from P and Philox, nothing else stored):
//   dV = Pd^T dO;  dPd = dO V^T;  dP = dropout'(dPd);  dS = P * (dP - rowsum(P * dP))   (fused row kernel)
//   dQ = dS K / sqrt(HS);  dK = dS^T Q / sqrt(HS)
// MathMode::FP32: every operand fp32 (SGEMM). MathMode::BF16 (T and HS multiples of 8): Q/K/V and dO are rounded
// to bf16 once per call, the row kernels write Pd and dS directly in bf16, S and dPd come out of the GEMMs in fp32
// and softmax runs in fp32; all GEMMs accumulate in fp32.
// Dropout element (b, h, i, j) uses global index ((sample_offset + b) * total_heads + head_offset + h) * T*T + i*T + j,
// exactly as the CPU backend.
// Scratch (floats; the bf16 buffers take half a float per element), TT = T*T, C = NH*HS:
//   [0, B NH TT)          Pd  (fp32)  |  Pd16 + dS16 (bf16)
//   [B NH TT, 2 B NH TT)  dP / dS (fp32, dS in place)
//   [2 B NH TT, + 2 B T C) qkv16 (B T 3C bf16) + dO16 (B T C bf16)           (bf16 mode only)
// Not done yet: a flash-style kernel that never writes S/P to memory (the saved P would then be recomputed).
#include <cuda_bf16.h>

#include <cmath>

#include "runtime/cuda/attention_rows.cuh"
#include "runtime/cuda/gemm.cuh"

namespace erlangshen::cuda {
namespace {

using namespace attention_rows;  // NOLINT: the row kernels and their launchers

// The operands of one call: element type and base pointers of Q/K/V, dO, Pd, dS as the GEMMs read them.
struct Operands {
  cudaDataType_t type;   // CUDA_R_32F or CUDA_R_16BF
  size_t elem;           // bytes per element
  const char* qkv;       // (B, T, 3C)
  const char* dout;      // (B, T, C)
  char* pd;              // (B, NH, T, T)
  char* ds;              // (B, NH, T, T)
};

// C(m, n)[b] = alpha * op(A)[b] op(B)[b], batch over samples (c_type fp32).
void sample_gemm(const Launch& l, const char* op, cudaDataType_t ab, bool ta, bool tb, int m, int n, int k, float alpha,
                 const void* A, int lda, int64_t sa, const void* B, int ldb, int64_t sb, float* C, int ldc, int64_t sc,
                 int batch) {
  GemmArgs g;
  g.trans_a = ta, g.trans_b = tb;
  g.m = m, g.n = n, g.k = k;
  g.alpha = alpha;
  g.a_type = g.b_type = ab;
  g.A = A, g.lda = lda, g.stride_a = sa;
  g.B = B, g.ldb = ldb, g.stride_b = sb;
  g.C = C, g.ldc = ldc, g.stride_c = sc;
  g.batch = batch;
  gemm(l, op, g);
}

// Scratch carve-up (header comment); bf16 copies of qkv (and dout) made here when bf16.
Operands operands(const Launch& l, float* scratch, const float* qkv, const float* dout, const AttentionShape& s,
                  bool bf16) {
  const int64_t BNTT = static_cast<int64_t>(s.B) * s.NH * s.Tn * s.Tn;
  const int64_t N3C = static_cast<int64_t>(s.B) * s.Tn * 3 * s.NH * s.HS;
  if (!bf16) {
    return Operands{CUDA_R_32F, sizeof(float), reinterpret_cast<const char*>(qkv),
                    reinterpret_cast<const char*>(dout), reinterpret_cast<char*>(scratch),
                    reinterpret_cast<char*>(scratch + BNTT)};
  }
  auto* pd16 = reinterpret_cast<uint16_t*>(scratch);
  auto* ds16 = pd16 + BNTT;
  auto* qkv16 = reinterpret_cast<uint16_t*>(scratch + 2 * BNTT);
  auto* dout16 = qkv16 + N3C;
  float_to_bf16(l, qkv16, qkv, N3C);
  if (dout) float_to_bf16(l, dout16, dout, N3C / 3);
  return Operands{CUDA_R_16BF, 2, reinterpret_cast<const char*>(qkv16), reinterpret_cast<const char*>(dout16),
                  reinterpret_cast<char*>(pd16), reinterpret_cast<char*>(ds16)};
}

// What forward and backward share: the math and dropout constants, the operands, and head h of every sample as
// a strided batch of column-major views (see the header comment):
//   q/k/v: (HS, T), ld 3C, sample stride T*3C;  out/dout: (HS, T), ld C, stride T*C;  T x T blocks: ld T, stride NH*TT.
struct Call {
  int T, HS, NH, C;
  float scale, keep_scale;
  uint32_t threshold;
  bool drop, bf16, write_pd;  // write_pd: Pd has its own buffer (dropout, or bf16); else O = P V from probs
  int64_t TT, rows, s_qkv, s_o, s_tt;
  RowGeometry geo;
  Operands o;

  Call(const Launch& l, const char* op, float* scratch, const float* qkv, const float* dout, const AttentionShape& s,
       const DropoutSpec& dropout)
      : T(s.Tn), HS(s.HS), NH(s.NH), C(s.NH * s.HS), scale(1.0f / std::sqrt(static_cast<float>(s.HS))),
        keep_scale(1.0f / (1.0f - dropout.p)), threshold(dropout_threshold(dropout.p)), drop(dropout.p > 0.0f),
        bf16(need_context(l, op).math() == MathMode::BF16 && s.Tn % 8 == 0 && s.HS % 8 == 0),
        write_pd(drop || bf16), TT(static_cast<int64_t>(T) * T), rows(static_cast<int64_t>(s.B) * NH * T),
        s_qkv(static_cast<int64_t>(T) * 3 * C), s_o(static_cast<int64_t>(T) * C), s_tt(NH * TT),
        geo{s.Tn, s.NH, s.total_heads > 0 ? s.total_heads : s.NH, s.head_offset, s.sample_offset},
        o(operands(l, scratch, qkv, dout, s, bf16)) {}

  // Element offsets of head h: Q/K/V (which = 0/1/2) in qkv, the head's columns in out/dout, its T x T block.
  int64_t qkv_off(int h, int which) const { return static_cast<int64_t>(which) * C + static_cast<int64_t>(h) * HS; }
  int64_t o_off(int h) const { return static_cast<int64_t>(h) * HS; }
  int64_t tt_off(int h) const { return h * TT; }
  // `off` elements of the operands' type past `base`.
  const char* at(const char* base, int64_t off) const { return base + off * static_cast<int64_t>(o.elem); }
  // f(p) with a Pd / dS buffer as the element type the GEMMs read (bf16 or fp32).
  template <class F>
  void as_operand(char* p, F&& f) const {
    if (bf16) f(reinterpret_cast<__nv_bfloat16*>(p));
    else f(reinterpret_cast<float*>(p));
  }
};

}  // namespace

int64_t attention_scratch_elems(const AttentionShape& s) {
  const int64_t B = s.B, TT = static_cast<int64_t>(s.Tn) * s.Tn, C = static_cast<int64_t>(s.NH) * s.HS;
  return 2 * B * s.NH * TT + 2 * B * s.Tn * C;
}

void attention_forward(Launch l, float* out, float* probs, float* scratch, const float* qkv, const uint8_t* key_valid,
                       const AttentionShape& s, const DropoutSpec& dropout) {
  const Call c(l, "attention_forward", scratch, qkv, nullptr, s, dropout);
  const int T = c.T, HS = c.HS, C = c.C;
  for (int h = 0; h < c.NH; ++h)  // S^T(col) (T_j, T_i) = op_T(K) Q  ==  row-major S (T_i, T_j)
    sample_gemm(l, "attention_forward", c.o.type, true, false, T, T, HS, c.scale, c.at(c.o.qkv, c.qkv_off(h, 1)), 3 * C,
                c.s_qkv, c.at(c.o.qkv, c.qkv_off(h, 0)), 3 * C, c.s_qkv, probs + c.tt_off(h), T, c.s_tt, s.B);
  c.as_operand(c.o.pd, [&](auto* pd) {
    softmax_dropout(l, c.rows, probs, pd, key_valid, c.geo, dropout.key, c.threshold, c.keep_scale, c.drop,
                    c.write_pd);
  });
  const char* pd = c.write_pd ? c.o.pd : reinterpret_cast<const char*>(probs);
  for (int h = 0; h < c.NH; ++h)  // O^T(col) (HS, T_i) = V^T(col) Pd^T(col)
    sample_gemm(l, "attention_forward", c.o.type, false, false, HS, T, T, 1.0f, c.at(c.o.qkv, c.qkv_off(h, 2)), 3 * C,
                c.s_qkv, c.at(pd, c.tt_off(h)), T, c.s_tt, out + c.o_off(h), C, c.s_o, s.B);
}

void attention_backward(Launch l, float* dqkv, float* scratch, const float* dout, const float* qkv, const float* probs,
                        const uint8_t* key_valid, const AttentionShape& s, const DropoutSpec& dropout) {
  const Call c(l, "attention_backward", scratch, qkv, dout, s, dropout);
  const int T = c.T, HS = c.HS, C = c.C;
  float* dP = scratch + static_cast<int64_t>(s.B) * c.NH * c.TT;  // fp32 dPd -> dP (-> dS in place when fp32)
  if (c.write_pd) {
    c.as_operand(c.o.pd, [&](auto* pd) {
      dropout_rows(l, c.rows, pd, probs, c.geo, dropout.key, c.threshold, c.keep_scale, c.drop);
    });
  }
  const char* pd = c.write_pd ? c.o.pd : reinterpret_cast<const char*>(probs);
  for (int h = 0; h < c.NH; ++h) {
    // dV^T(col) (HS, T_j) = dO^T(col) (HS, T_i) @ Pd (T_i, T_j)
    sample_gemm(l, "attention_backward", c.o.type, false, true, HS, T, T, 1.0f, c.at(c.o.dout, c.o_off(h)), C, c.s_o,
                c.at(pd, c.tt_off(h)), T, c.s_tt, dqkv + c.qkv_off(h, 2), 3 * C, c.s_qkv, s.B);
    // dPd row-major (T_i, T_j) == col-major (T_j, T_i) = op_T(V^T(col)) dO^T(col)
    sample_gemm(l, "attention_backward", c.o.type, true, false, T, T, HS, 1.0f, c.at(c.o.qkv, c.qkv_off(h, 2)), 3 * C,
                c.s_qkv, c.at(c.o.dout, c.o_off(h)), C, c.s_o, dP + c.tt_off(h), T, c.s_tt, s.B);
  }
  // dS goes to o.ds: its own bf16 buffer, or (fp32) the dP buffer itself, in place.
  c.as_operand(c.o.ds, [&](auto* ds) {
    softmax_backward(l, c.rows, ds, dP, probs, c.geo, dropout.key, c.threshold, c.keep_scale, c.drop);
  });
  for (int h = 0; h < c.NH; ++h) {
    // dQ^T(col) (HS, T_i) = scale * K^T(col) (HS, T_j) @ dS^T (T_j, T_i)
    sample_gemm(l, "attention_backward", c.o.type, false, false, HS, T, T, c.scale, c.at(c.o.qkv, c.qkv_off(h, 1)),
                3 * C, c.s_qkv, c.at(c.o.ds, c.tt_off(h)), T, c.s_tt, dqkv + c.qkv_off(h, 0), 3 * C, c.s_qkv, s.B);
    // dK^T(col) (HS, T_j) = scale * Q^T(col) (HS, T_i) @ dS (T_i, T_j)
    sample_gemm(l, "attention_backward", c.o.type, false, true, HS, T, T, c.scale, c.at(c.o.qkv, c.qkv_off(h, 0)),
                3 * C, c.s_qkv, c.at(c.o.ds, c.tt_off(h)), T, c.s_tt, dqkv + c.qkv_off(h, 1), 3 * C, c.s_qkv, s.B);
  }
}

}  // namespace erlangshen::cuda
