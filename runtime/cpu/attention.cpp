// Multi-head self-attention for one TP rank's heads, one (sample, head) pair per task.
//   S = Q K^T / sqrt(HS), padded keys -> -inf;  P = softmax(S) (saved);  O = dropout(P) V
// (probs_bf16: S and P each rounded to bf16 as formed, the softmax in T: bf16 activation storage)
// Backward (Pd = dropout(P); the mask is redrawn from Philox, or read from dropout.keep_mask, laid out like probs,
// where forward stored it):
//   dV = Pd^T dO;  dPd = dO V^T;  dP = dropout'(dPd);  dS = P * (dP - rowsum(P * dP));
//   dQ = dS K / sqrt(HS);  dK = dS^T Q / sqrt(HS)
// Q, K, V are strided views into qkv (B, Tn, 3, NH, HS); GEMMs go through CBLAS with leading dimensions.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "runtime/bf16.h"
#include "runtime/cpu/blas.h"
#include "runtime/cpu/fast_math.h"
#include "runtime/cpu/kernels.h"
#include "runtime/cpu/philox_batch.h"

namespace erlangshen::cpu {
namespace {

struct HeadView {
  int64_t q, k, v;    // offsets of head h of sample b in qkv
  int64_t o;          // offset in out / dout
  int64_t p;          // offset of the (Tn, Tn) probability block
  uint64_t drop_base; // global dropout index of element (0, 0)
};

HeadView head_view(const AttentionShape& s, int b, int h) {
  const int64_t C = static_cast<int64_t>(s.NH) * s.HS;
  const int64_t row0 = static_cast<int64_t>(b) * s.Tn * 3 * C;
  const int total_heads = s.total_heads > 0 ? s.total_heads : s.NH;
  HeadView v;
  v.q = row0 + static_cast<int64_t>(h) * s.HS;
  v.k = v.q + C;
  v.v = v.q + 2 * C;
  v.o = static_cast<int64_t>(b) * s.Tn * C + static_cast<int64_t>(h) * s.HS;
  v.p = (static_cast<int64_t>(b) * s.NH + h) * s.Tn * s.Tn;
  v.drop_base = static_cast<uint64_t>(((s.sample_offset + b) * total_heads + s.head_offset + h)) *
                static_cast<uint64_t>(s.Tn) * static_cast<uint64_t>(s.Tn);
  return v;
}

// x[i] = keep(base + i) ? src[i] * scale : 0 over n elements, the decisions from `source` (with a stored mask,
// element i's is d.keep_mask[mask_at + i]: the mask is laid out like probs).
template <class T>
void apply_dropout(T* x, const T* src, int64_t n, const DropoutSpec& d, uint64_t base, MaskSource source,
                   int64_t mask_at) {
  const uint32_t threshold = dropout_threshold(d.p);
  const T scale = T(1) / (T(1) - T(d.p));
  uint8_t local[2048];
  for (int64_t i0 = 0; i0 < n; i0 += 2048) {
    const int count = static_cast<int>(std::min<int64_t>(2048, n - i0));
    const uint8_t* keep = keep_decisions(d.key, base + static_cast<uint64_t>(i0), count, threshold, source,
                                         d.keep_mask, mask_at + i0, local);
#pragma omp simd
    for (int j = 0; j < count; ++j) x[i0 + j] = keep[j] ? src[i0 + j] * scale : T(0);
  }
}

}  // namespace

int64_t attention_scratch_elems(const AttentionShape& s) {
  return static_cast<int64_t>(omp_get_max_threads()) * 2 * s.Tn * s.Tn;
}

template <class T>
void attention_forward(T* out, T* probs, T* scratch, const T* qkv, const uint8_t* key_valid, const AttentionShape& s,
                       const DropoutSpec& dropout, bool probs_bf16) {
  const int Tn = s.Tn, HS = s.HS;
  const int ld = 3 * s.NH * HS, ldo = s.NH * HS;
  const T scale = T(1) / std::sqrt(T(HS));
  const int tasks = s.B * s.NH;
#pragma omp parallel for schedule(dynamic, 1)
  for (int task = 0; task < tasks; ++task) {
    const int b = task / s.NH, h = task % s.NH;
    const HeadView v = head_view(s, b, h);
    T* P = probs + v.p;
    gemm(CblasNoTrans, CblasTrans, Tn, Tn, HS, scale, qkv + v.q, ld, qkv + v.k, ld, T(0), P, Tn);
    const uint8_t* valid = key_valid + static_cast<int64_t>(b) * Tn;
    if (probs_bf16)  // the scores as a bf16 GEMM output holds them
      for (int64_t e = 0; e < static_cast<int64_t>(Tn) * Tn; ++e)
        P[e] = static_cast<T>(round_to_bf16(static_cast<float>(P[e])));
    for (int i = 0; i < Tn; ++i) {
      T* row = P + static_cast<int64_t>(i) * Tn;
      T mx = -std::numeric_limits<T>::infinity();
      for (int j = 0; j < Tn; ++j)
        if (valid[j] && row[j] > mx) mx = row[j];
      T sum = 0;
#pragma omp simd reduction(+ : sum)
      for (int j = 0; j < Tn; ++j) {
        const T e = valid[j] ? exp_fast(row[j] - mx) : T(0);
        row[j] = e;
        sum += e;
      }
      const T inv = sum > 0 ? T(1) / sum : T(0);
      for (int j = 0; j < Tn; ++j) row[j] *= inv;
      if (probs_bf16)
        for (int j = 0; j < Tn; ++j) row[j] = static_cast<T>(round_to_bf16(static_cast<float>(row[j])));
    }
    const T* Pd = P;
    if (dropout.p > 0.0f) {
      T* work = scratch + static_cast<int64_t>(omp_get_thread_num()) * 2 * Tn * Tn;
      const MaskSource source = dropout.keep_mask ? MaskSource::DrawAndStore : MaskSource::Draw;
      apply_dropout(work, P, static_cast<int64_t>(Tn) * Tn, dropout, v.drop_base, source, v.p);
      Pd = work;
    }
    gemm(CblasNoTrans, CblasNoTrans, Tn, HS, Tn, T(1), Pd, Tn, qkv + v.v, ld, T(0), out + v.o, ldo);
  }
}

template <class T>
void attention_backward(T* dqkv, T* scratch, const T* dout, const T* qkv, const T* probs, const uint8_t* key_valid,
                        const AttentionShape& s, const DropoutSpec& dropout) {
  const int Tn = s.Tn, HS = s.HS;
  const int ld = 3 * s.NH * HS, ldo = s.NH * HS;
  const T scale = T(1) / std::sqrt(T(HS));
  const int64_t TT = static_cast<int64_t>(Tn) * Tn;
  const int tasks = s.B * s.NH;
#pragma omp parallel for schedule(dynamic, 1)
  for (int task = 0; task < tasks; ++task) {
    const int b = task / s.NH, h = task % s.NH;
    const HeadView v = head_view(s, b, h);
    const T* P = probs + v.p;
    T* work = scratch + static_cast<int64_t>(omp_get_thread_num()) * 2 * TT;
    T* Pd = work;       // dropped probabilities
    T* dP = work + TT;  // gradient w.r.t. P, then dS in place
    const bool drop = dropout.p > 0.0f;
    const MaskSource source = dropout.keep_mask ? MaskSource::Stored : MaskSource::Draw;
    if (drop) apply_dropout(Pd, P, TT, dropout, v.drop_base, source, v.p);
    // dV = Pd^T dO
    gemm(CblasTrans, CblasNoTrans, Tn, HS, Tn, T(1), drop ? Pd : P, Tn, dout + v.o, ldo, T(0), dqkv + v.v, ld);
    // dPd = dO V^T, then through dropout
    gemm(CblasNoTrans, CblasTrans, Tn, Tn, HS, T(1), dout + v.o, ldo, qkv + v.v, ld, T(0), dP, Tn);
    if (drop) apply_dropout(dP, dP, TT, dropout, v.drop_base, source, v.p);
    // dS = P * (dP - rowsum(P * dP))
    for (int i = 0; i < Tn; ++i) {
      const T* p = P + static_cast<int64_t>(i) * Tn;
      T* d = dP + static_cast<int64_t>(i) * Tn;
      T dot = 0;
      for (int j = 0; j < Tn; ++j) dot += p[j] * d[j];
      for (int j = 0; j < Tn; ++j) d[j] = p[j] * (d[j] - dot);
    }
    // dQ = dS K * scale;  dK = dS^T Q * scale
    gemm(CblasNoTrans, CblasNoTrans, Tn, HS, Tn, scale, dP, Tn, qkv + v.k, ld, T(0), dqkv + v.q, ld);
    gemm(CblasTrans, CblasNoTrans, Tn, HS, Tn, scale, dP, Tn, qkv + v.q, ld, T(0), dqkv + v.k, ld);
  }
}

template void attention_forward<float>(float*, float*, float*, const float*, const uint8_t*, const AttentionShape&,
                                       const DropoutSpec&, bool);
template void attention_forward<double>(double*, double*, double*, const double*, const uint8_t*, const AttentionShape&,
                                        const DropoutSpec&, bool);
template void attention_backward<float>(float*, float*, const float*, const float*, const float*, const uint8_t*,
                                        const AttentionShape&, const DropoutSpec&);
template void attention_backward<double>(double*, double*, const double*, const double*, const double*, const uint8_t*,
                                         const AttentionShape&, const DropoutSpec&);

}  // namespace erlangshen::cpu
