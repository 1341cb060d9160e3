// Multi-head self-attention for one TP rank's heads (seq <= 512 tested; any T works), per sample b with the
// heads as a strided cuBLASLt batch (head h of Q/K/V sits at column h*HS of qkv (B, T, 3, NH, HS), rows 3C apart):
//   S = Q K^T / sqrt(HS)                              GEMM, written straight into probs (B, NH, T, T)
//   P = softmax(S) with padded keys masked (saved);   Pd = dropout(P)   one fused row kernel (Philox, global index)
//   O = Pd V                                          GEMM into out (B, T, NH*HS)
// Backward (Pd recomputed from P and Philox, nothing else stored):
//   dV = Pd^T dO;  dPd = dO V^T;  dP = dropout'(dPd);  dS = P * (dP - rowsum(P * dP))   (fused row kernel)
//   dQ = dS K / sqrt(HS);  dK = dS^T Q / sqrt(HS)
// Dropout element (b, h, i, j) uses global index ((sample_offset + b) * total_heads + head_offset + h) * T*T + i*T + j,
// exactly as the CPU backend. Scratch: 2 * NH * T * T floats (Pd and dP of one sample).
// Not done yet: a flash-style kernel that never writes S/P to memory (the saved P would then be recomputed).
#include <cmath>

#include "runtime/cuda/gemm.cuh"

namespace erlangshen::cuda {
namespace {

constexpr int kRowThreads = 128;

struct RowGeometry {
  int T, NH, total_heads, head_offset;
  int64_t sample;  // global sample id of this sample
  __device__ uint64_t drop_index(int h, int i) const {
    return (static_cast<uint64_t>(sample) * total_heads + head_offset + h) * static_cast<uint64_t>(T) * T +
           static_cast<uint64_t>(i) * T;
  }
};

// keep bits of 4 consecutive row elements j0..j0+3 (global indices g..g+3); one Philox block when aligned.
__device__ __forceinline__ void keep4(bool keep[4], PhiloxKey key, uint64_t g, uint32_t threshold, int valid_count) {
  if ((g & 3) == 0) {
    const Philox4 r = philox_at(key, g >> 2);
#pragma unroll
    for (int w = 0; w < 4; ++w) keep[w] = r.v[w] >= threshold;
  } else {
#pragma unroll
    for (int w = 0; w < 4; ++w) keep[w] = w < valid_count ? dropout_keep(key, g + w, threshold) : false;
  }
}

// One block per (h, i) row of sample b: probs row <- softmax(S row, masked); pd row <- dropout(probs row).
__global__ void softmax_dropout_kernel(float* probs, float* pd, const uint8_t* valid, RowGeometry geo, PhiloxKey key,
                                       uint32_t threshold, float scale, bool drop) {
  __shared__ float smem[32];
  const int row = blockIdx.x, T = geo.T;
  float* p = probs + static_cast<int64_t>(row) * T;
  float mx = -INFINITY;
  for (int j = threadIdx.x; j < T; j += blockDim.x)
    if (valid[j]) mx = fmaxf(mx, p[j]);
  mx = block_max(mx, smem);
  float s = 0.0f;
  for (int j = threadIdx.x; j < T; j += blockDim.x) {
    const float e = valid[j] ? expf(p[j] - mx) : 0.0f;
    p[j] = e;
    s += e;
  }
  const float sum = block_sum(s, smem);
  const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
  for (int j = threadIdx.x; j < T; j += blockDim.x) p[j] *= inv;
  if (!drop) return;
  __syncthreads();
  float* d = pd + static_cast<int64_t>(row) * T;
  const uint64_t base = geo.drop_index(row / T, row % T);
  for (int j0 = 4 * threadIdx.x; j0 < T; j0 += 4 * blockDim.x) {
    bool keep[4];
    keep4(keep, key, base + j0, threshold, min(4, T - j0));
    for (int w = 0; w < 4 && j0 + w < T; ++w) d[j0 + w] = keep[w] ? p[j0 + w] * scale : 0.0f;
  }
}

// pd = dropout(probs), rows of sample b (backward recomputes Pd).
__global__ void dropout_rows_kernel(float* pd, const float* probs, RowGeometry geo, PhiloxKey key, uint32_t threshold,
                                    float scale) {
  const int row = blockIdx.x, T = geo.T;
  const float* p = probs + static_cast<int64_t>(row) * T;
  float* d = pd + static_cast<int64_t>(row) * T;
  const uint64_t base = geo.drop_index(row / T, row % T);
  for (int j0 = 4 * threadIdx.x; j0 < T; j0 += 4 * blockDim.x) {
    bool keep[4];
    keep4(keep, key, base + j0, threshold, min(4, T - j0));
    for (int w = 0; w < 4 && j0 + w < T; ++w) d[j0 + w] = keep[w] ? p[j0 + w] * scale : 0.0f;
  }
}

// ds row (in place over dpd): dP = dropout'(dPd); dS = P * (dP - sum_j P dP).
__global__ void softmax_backward_kernel(float* ds, const float* probs, RowGeometry geo, PhiloxKey key,
                                        uint32_t threshold, float scale, bool drop) {
  __shared__ float smem[32];
  const int row = blockIdx.x, T = geo.T;
  const float* p = probs + static_cast<int64_t>(row) * T;
  float* d = ds + static_cast<int64_t>(row) * T;
  if (drop) {
    const uint64_t base = geo.drop_index(row / T, row % T);
    for (int j0 = 4 * threadIdx.x; j0 < T; j0 += 4 * blockDim.x) {
      bool keep[4];
      keep4(keep, key, base + j0, threshold, min(4, T - j0));
      for (int w = 0; w < 4 && j0 + w < T; ++w) d[j0 + w] = keep[w] ? d[j0 + w] * scale : 0.0f;
    }
    __syncthreads();  // the loops below read d with a different thread-to-element mapping
  }
  float dot = 0.0f;
  for (int j = threadIdx.x; j < T; j += blockDim.x) dot += p[j] * d[j];
  dot = block_sum(dot, smem);
  for (int j = threadIdx.x; j < T; j += blockDim.x) d[j] = p[j] * (d[j] - dot);
}

// Per-head views of sample b as column-major matrices for cuBLASLt (see the header comment).
struct SampleViews {
  const float *q, *k, *v;  // (HS, T) column-major, ld 3C, head stride HS
  int ld_qkv, C;
  int64_t TT;
};

SampleViews views(const float* qkv, const AttentionShape& s, int b) {
  const int C = s.NH * s.HS;
  const float* base = qkv + static_cast<int64_t>(b) * s.Tn * 3 * C;
  return SampleViews{base, base + C, base + 2 * C, 3 * C, C, static_cast<int64_t>(s.Tn) * s.Tn};
}

// C(m, n)[h] = alpha * op(A)[h] op(B)[h], batch over heads.
void head_gemm(const Launch& l, const char* op, bool ta, bool tb, int m, int n, int k, float alpha, const float* A,
               int lda, int64_t sa, const float* B, int ldb, int64_t sb, float* C, int ldc, int64_t sc, int heads) {
  GemmArgs g;
  g.trans_a = ta, g.trans_b = tb;
  g.m = m, g.n = n, g.k = k;
  g.alpha = alpha;
  g.A = A, g.lda = lda, g.stride_a = sa;
  g.B = B, g.ldb = ldb, g.stride_b = sb;
  g.C = C, g.ldc = ldc, g.stride_c = sc;
  g.batch = heads;
  gemm(l, op, g);
}

RowGeometry geometry(const AttentionShape& s, int b) {
  return RowGeometry{s.Tn, s.NH, s.total_heads > 0 ? s.total_heads : s.NH, s.head_offset, s.sample_offset + b};
}

}  // namespace

int64_t attention_scratch_elems(const AttentionShape& s) { return 2LL * s.NH * s.Tn * s.Tn; }

void attention_forward(Launch l, float* out, float* probs, float* scratch, const float* qkv, const uint8_t* key_valid,
                       const AttentionShape& s, const DropoutSpec& dropout) {
  const int T = s.Tn, HS = s.HS, NH = s.NH;
  const float scale = 1.0f / std::sqrt(static_cast<float>(HS));
  const bool drop = dropout.p > 0.0f;
  const uint32_t threshold = dropout_threshold(dropout.p);
  const float keep_scale = 1.0f / (1.0f - dropout.p);
  for (int b = 0; b < s.B; ++b) {
    const SampleViews v = views(qkv, s, b);
    float* P = probs + static_cast<int64_t>(b) * NH * v.TT;
    // S^T(col) (T_j, T_i) = op_T(K) Q  ==  row-major S (T_i, T_j)
    head_gemm(l, "attention_forward", true, false, T, T, HS, scale, v.k, v.ld_qkv, HS, v.q, v.ld_qkv, HS, P, T, v.TT,
              NH);
    softmax_dropout_kernel<<<NH * T, kRowThreads, 0, stream_of(l)>>>(P, scratch, key_valid + int64_t(b) * T,
                                                                      geometry(s, b), dropout.key, threshold,
                                                                      keep_scale, drop);
    ERL_CUDA_LAUNCHED();
    // O^T(col) (HS, T_i) = V^T(col) Pd^T(col)
    float* O = out + static_cast<int64_t>(b) * T * v.C;
    head_gemm(l, "attention_forward", false, false, HS, T, T, 1.0f, v.v, v.ld_qkv, HS, drop ? scratch : P, T, v.TT, O,
              v.C, HS, NH);
  }
}

void attention_backward(Launch l, float* dqkv, float* scratch, const float* dout, const float* qkv, const float* probs,
                        const uint8_t* key_valid, const AttentionShape& s, const DropoutSpec& dropout) {
  const int T = s.Tn, HS = s.HS, NH = s.NH;
  const float scale = 1.0f / std::sqrt(static_cast<float>(HS));
  const bool drop = dropout.p > 0.0f;
  const uint32_t threshold = dropout_threshold(dropout.p);
  const float keep_scale = 1.0f / (1.0f - dropout.p);
  const int64_t TT = static_cast<int64_t>(T) * T;
  float* Pd = scratch;
  float* dS = scratch + NH * TT;
  for (int b = 0; b < s.B; ++b) {
    const SampleViews v = views(qkv, s, b);
    float* dbase = dqkv + static_cast<int64_t>(b) * T * 3 * v.C;
    float *dQ = dbase, *dK = dbase + v.C, *dV = dbase + 2 * v.C;
    const float* dO = dout + static_cast<int64_t>(b) * T * v.C;
    const float* P = probs + static_cast<int64_t>(b) * NH * TT;
    const RowGeometry geo = geometry(s, b);
    if (drop) {
      dropout_rows_kernel<<<NH * T, kRowThreads, 0, stream_of(l)>>>(Pd, P, geo, dropout.key, threshold, keep_scale);
      ERL_CUDA_LAUNCHED();
    }
    // dV^T(col) (HS, T_j) = dO^T(col) (HS, T_i) @ Pd (T_i, T_j)
    head_gemm(l, "attention_backward", false, true, HS, T, T, 1.0f, dO, v.C, HS, drop ? Pd : P, T, TT, dV, v.ld_qkv,
              HS, NH);
    // dPd row-major (T_i, T_j) == col-major (T_j, T_i) = op_T(V^T(col)) dO^T(col)
    head_gemm(l, "attention_backward", true, false, T, T, HS, 1.0f, v.v, v.ld_qkv, HS, dO, v.C, HS, dS, T, TT, NH);
    softmax_backward_kernel<<<NH * T, kRowThreads, 0, stream_of(l)>>>(dS, P, geo, dropout.key, threshold, keep_scale,
                                                                       drop);
    ERL_CUDA_LAUNCHED();
    // dQ^T(col) (HS, T_i) = scale * K^T(col) (HS, T_j) @ dS^T (T_j, T_i)
    head_gemm(l, "attention_backward", false, false, HS, T, T, scale, v.k, v.ld_qkv, HS, dS, T, TT, dQ, v.ld_qkv, HS,
              NH);
    // dK^T(col) (HS, T_j) = scale * Q^T(col) (HS, T_i) @ dS (T_i, T_j)
    head_gemm(l, "attention_backward", false, true, HS, T, T, scale, v.q, v.ld_qkv, HS, dS, T, TT, dK, v.ld_qkv, HS,
              NH);
  }
}

}  // namespace erlangshen::cuda
