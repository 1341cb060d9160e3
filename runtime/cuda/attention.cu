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

#include <algorithm>
#include <cmath>
#include <initializer_list>

#include "runtime/cuda/gemm.cuh"

namespace erlangshen::cuda {
namespace {

constexpr int kRowThreads = 128;

// Row r of the (B, NH, T) rows: sample b = r / (NH T), head h = r / T % NH, query i = r % T.
struct RowGeometry {
  int T, NH, total_heads, head_offset;
  int64_t sample_offset;  // global sample id of local sample 0
  __device__ int sample(int64_t r) const { return static_cast<int>(r / (static_cast<int64_t>(NH) * T)); }
  __device__ uint64_t drop_index(int64_t r) const {
    const int64_t b = r / (static_cast<int64_t>(NH) * T);
    const int h = static_cast<int>(r / T % NH), i = static_cast<int>(r % T);
    return (static_cast<uint64_t>(sample_offset + b) * total_heads + head_offset + h) * static_cast<uint64_t>(T) * T +
           static_cast<uint64_t>(i) * T;
  }
};

__device__ __forceinline__ void store(float* p, float v) { *p = v; }
__device__ __forceinline__ void store(__nv_bfloat16* p, float v) { *p = __float2bfloat16_rn(v); }

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

// pd row <- dropout(p row) (or p itself when !drop), in pd's element type.
template <class TP>
__device__ void write_dropped_row(TP* pd, const float* p, int T, uint64_t base, PhiloxKey key, uint32_t threshold,
                                  float scale, bool drop) {
  for (int j0 = 4 * threadIdx.x; j0 < T; j0 += 4 * blockDim.x) {
    bool keep[4] = {true, true, true, true};
    if (drop) keep4(keep, key, base + j0, threshold, min(4, T - j0));
    for (int w = 0; w < 4 && j0 + w < T; ++w)
      store(pd + j0 + w, drop ? (keep[w] ? p[j0 + w] * scale : 0.0f) : p[j0 + w]);
  }
}

// One block per row: probs row <- softmax(S row, masked); if write_pd: pd row <- dropout(probs row).
template <class TP>
__global__ void softmax_dropout_kernel(float* probs, TP* pd, const uint8_t* key_valid, RowGeometry geo,
                                       PhiloxKey key, uint32_t threshold, float scale, bool drop, bool write_pd) {
  __shared__ float smem[32];
  const int64_t row = blockIdx.x;
  const int T = geo.T;
  const uint8_t* valid = key_valid + static_cast<int64_t>(geo.sample(row)) * T;
  float* p = probs + row * T;
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
  if (!write_pd) return;
  __syncthreads();  // the row is re-read with a different thread-to-element mapping
  write_dropped_row(pd + row * T, p, T, geo.drop_index(row), key, threshold, scale, drop);
}

// pd = dropout(probs) for every row (backward recomputes Pd).
template <class TP>
__global__ void dropout_rows_kernel(TP* pd, const float* probs, RowGeometry geo, PhiloxKey key, uint32_t threshold,
                                    float scale, bool drop) {
  const int64_t row = blockIdx.x;
  write_dropped_row(pd + row * geo.T, probs + row * geo.T, geo.T, geo.drop_index(row), key, threshold, scale, drop);
}

// dP = dropout'(dPd) (in place in dp); ds row = P * (dP - sum_j P dP), in ds's element type (ds may alias dp).
template <class TS>
__global__ void softmax_backward_kernel(TS* ds, float* dp, const float* probs, RowGeometry geo, PhiloxKey key,
                                        uint32_t threshold, float scale, bool drop) {
  __shared__ float smem[32];
  const int64_t row = blockIdx.x;
  const int T = geo.T;
  const float* p = probs + row * T;
  float* d = dp + row * T;
  if (drop) {
    const uint64_t base = geo.drop_index(row);
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
  TS* out = ds + row * T;
  for (int j = threadIdx.x; j < T; j += blockDim.x) store(out + j, p[j] * (d[j] - dot));
}

// ---- Register-resident row kernels: T % 4 == 0, T <= 4 * 128 * kMaxGroups, 16-byte aligned rows ----
// Thread t owns the groups of 4 consecutive elements g = t + k * blockDim.x (k < G): one float4 load of each
// input, every pass over the row in registers, one store of each output. A group starts at a multiple of 4 of the
// global dropout index (T % 4 == 0), so its 4 keep bits are exactly one Philox block, as keep4's aligned case.
constexpr int kMaxGroups = 2;

__device__ __forceinline__ void store4(float* dst, float a, float b, float c, float d) {
  *reinterpret_cast<float4*>(dst) = make_float4(a, b, c, d);
}
__device__ __forceinline__ void store4(__nv_bfloat16* dst, float a, float b, float c, float d) {
  const __nv_bfloat162 lo = __floats2bfloat162_rn(a, b), hi = __floats2bfloat162_rn(c, d);
  uint2 u;
  u.x = *reinterpret_cast<const uint32_t*>(&lo);
  u.y = *reinterpret_cast<const uint32_t*>(&hi);
  *reinterpret_cast<uint2*>(dst) = u;
}
__device__ __forceinline__ float& lane(float4& v, int w) { return (&v.x)[w]; }

__device__ __forceinline__ void keep_group(bool keep[4], PhiloxKey key, uint64_t g, uint32_t threshold, bool drop) {
  if (!drop) {
    keep[0] = keep[1] = keep[2] = keep[3] = true;
    return;
  }
  const Philox4 r = philox_at(key, g >> 2);
#pragma unroll
  for (int w = 0; w < 4; ++w) keep[w] = r.v[w] >= threshold;
}

template <class TP, int G>
__global__ void softmax_dropout_rows4(float* probs, TP* pd, const uint8_t* key_valid, RowGeometry geo, PhiloxKey key,
                                      uint32_t threshold, float scale, bool drop, bool write_pd) {
  __shared__ float smem[32];
  const int64_t row = blockIdx.x;
  const int T = geo.T, groups = T / 4;
  const uint8_t* valid = key_valid + static_cast<int64_t>(geo.sample(row)) * T;
  float* p = probs + row * T;
  float4 v[G];
  unsigned valid_bits = 0;
  float mx = -INFINITY;
#pragma unroll
  for (int k = 0; k < G; ++k) {
    const int g = threadIdx.x + k * blockDim.x;
    if (g >= groups) continue;
    v[k] = *reinterpret_cast<const float4*>(p + 4 * g);
#pragma unroll
    for (int w = 0; w < 4; ++w)
      if (valid[4 * g + w]) {
        valid_bits |= 1u << (4 * k + w);
        mx = fmaxf(mx, lane(v[k], w));
      }
  }
  mx = block_max(mx, smem);
  float sum = 0.0f;
#pragma unroll
  for (int k = 0; k < G; ++k)
#pragma unroll
    for (int w = 0; w < 4; ++w) {
      const bool on = (valid_bits >> (4 * k + w)) & 1u;
      lane(v[k], w) = on ? expf(lane(v[k], w) - mx) : 0.0f;
      sum += lane(v[k], w);
    }
  sum = block_sum(sum, smem);
  const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
  const uint64_t base = geo.drop_index(row);
#pragma unroll
  for (int k = 0; k < G; ++k) {
    const int g = threadIdx.x + k * blockDim.x;
    if (g >= groups) continue;
    float4 q = v[k];
    q.x *= inv, q.y *= inv, q.z *= inv, q.w *= inv;
    store4(p + 4 * g, q.x, q.y, q.z, q.w);
    if (!write_pd) continue;
    bool keep[4];
    keep_group(keep, key, base + 4 * g, threshold, drop);
    const float f = drop ? scale : 1.0f;
    store4(pd + row * T + 4 * g, keep[0] ? q.x * f : 0.0f, keep[1] ? q.y * f : 0.0f, keep[2] ? q.z * f : 0.0f,
           keep[3] ? q.w * f : 0.0f);
  }
}

template <class TP, int G>
__global__ void dropout_rows4(TP* pd, const float* probs, RowGeometry geo, PhiloxKey key, uint32_t threshold,
                              float scale, bool drop) {
  const int64_t row = blockIdx.x;
  const int T = geo.T, groups = T / 4;
  const uint64_t base = geo.drop_index(row);
#pragma unroll
  for (int k = 0; k < G; ++k) {
    const int g = threadIdx.x + k * blockDim.x;
    if (g >= groups) continue;
    const float4 q = *reinterpret_cast<const float4*>(probs + row * T + 4 * g);
    bool keep[4];
    keep_group(keep, key, base + 4 * g, threshold, drop);
    const float f = drop ? scale : 1.0f;
    store4(pd + row * T + 4 * g, keep[0] ? q.x * f : 0.0f, keep[1] ? q.y * f : 0.0f, keep[2] ? q.z * f : 0.0f,
           keep[3] ? q.w * f : 0.0f);
  }
}

// ds (may alias dp: every thread reads its groups before writing them) = P * (dP - sum_j P dP), dP = dropout'(dPd).
template <class TS, int G>
__global__ void softmax_backward_rows4(TS* ds, const float* dp, const float* probs, RowGeometry geo, PhiloxKey key,
                                       uint32_t threshold, float scale, bool drop) {
  __shared__ float smem[32];
  const int64_t row = blockIdx.x;
  const int T = geo.T, groups = T / 4;
  const uint64_t base = geo.drop_index(row);
  float4 pv[G], dv[G];
  float dot = 0.0f;
#pragma unroll
  for (int k = 0; k < G; ++k) {
    const int g = threadIdx.x + k * blockDim.x;
    if (g >= groups) continue;
    pv[k] = *reinterpret_cast<const float4*>(probs + row * T + 4 * g);
    dv[k] = *reinterpret_cast<const float4*>(dp + row * T + 4 * g);
    bool keep[4];
    keep_group(keep, key, base + 4 * g, threshold, drop);
#pragma unroll
    for (int w = 0; w < 4; ++w) {
      if (drop) lane(dv[k], w) = keep[w] ? lane(dv[k], w) * scale : 0.0f;
      dot += lane(pv[k], w) * lane(dv[k], w);
    }
  }
  dot = block_sum(dot, smem);
#pragma unroll
  for (int k = 0; k < G; ++k) {
    const int g = threadIdx.x + k * blockDim.x;
    if (g >= groups) continue;
    store4(ds + row * T + 4 * g, pv[k].x * (dv[k].x - dot), pv[k].y * (dv[k].y - dot), pv[k].z * (dv[k].z - dot),
           pv[k].w * (dv[k].w - dot));
  }
}

// Launch shape of the register kernels for this T, or groups_per_thread 0 when T needs the generic kernels.
struct RowLaunch {
  int groups_per_thread = 0, threads = kRowThreads;
};
RowLaunch row_launch(int T, std::initializer_list<const void*> rows) {
  RowLaunch r;
  for (const void* p : rows)
    if (reinterpret_cast<uintptr_t>(p) % 16 != 0) return r;
  if (T % 4 != 0 || T / 4 > kRowThreads * kMaxGroups) return r;
  const int groups = T / 4;
  r.groups_per_thread = groups <= kRowThreads ? 1 : 2;
  const int per = (groups + r.groups_per_thread - 1) / r.groups_per_thread;
  r.threads = std::max(32, (per + 31) / 32 * 32);
  return r;
}

// Row-kernel launches: the register kernels where row_launch allows, else the generic ones.
template <class TP>
void softmax_dropout(const Launch& l, int64_t rows, float* probs, TP* pd, const uint8_t* key_valid, RowGeometry geo,
                     PhiloxKey key, uint32_t threshold, float scale, bool drop, bool write_pd) {
  const RowLaunch r = row_launch(geo.T, {probs, pd});
  if (r.groups_per_thread == 1)
    softmax_dropout_rows4<TP, 1><<<rows, r.threads, 0, stream_of(l)>>>(probs, pd, key_valid, geo, key, threshold,
                                                                        scale, drop, write_pd);
  else if (r.groups_per_thread == 2)
    softmax_dropout_rows4<TP, 2><<<rows, r.threads, 0, stream_of(l)>>>(probs, pd, key_valid, geo, key, threshold,
                                                                        scale, drop, write_pd);
  else
    softmax_dropout_kernel<TP><<<rows, kRowThreads, 0, stream_of(l)>>>(probs, pd, key_valid, geo, key, threshold,
                                                                        scale, drop, write_pd);
  ERL_CUDA_LAUNCHED();
}

template <class TP>
void dropout_rows(const Launch& l, int64_t rows, TP* pd, const float* probs, RowGeometry geo, PhiloxKey key,
                  uint32_t threshold, float scale, bool drop) {
  const RowLaunch r = row_launch(geo.T, {probs, pd});
  if (r.groups_per_thread == 1)
    dropout_rows4<TP, 1><<<rows, r.threads, 0, stream_of(l)>>>(pd, probs, geo, key, threshold, scale, drop);
  else if (r.groups_per_thread == 2)
    dropout_rows4<TP, 2><<<rows, r.threads, 0, stream_of(l)>>>(pd, probs, geo, key, threshold, scale, drop);
  else
    dropout_rows_kernel<TP><<<rows, kRowThreads, 0, stream_of(l)>>>(pd, probs, geo, key, threshold, scale, drop);
  ERL_CUDA_LAUNCHED();
}

template <class TS>
void softmax_backward(const Launch& l, int64_t rows, TS* ds, float* dp, const float* probs, RowGeometry geo,
                      PhiloxKey key, uint32_t threshold, float scale, bool drop) {
  const RowLaunch r = row_launch(geo.T, {ds, dp, probs});
  if (r.groups_per_thread == 1)
    softmax_backward_rows4<TS, 1><<<rows, r.threads, 0, stream_of(l)>>>(ds, dp, probs, geo, key, threshold, scale,
                                                                         drop);
  else if (r.groups_per_thread == 2)
    softmax_backward_rows4<TS, 2><<<rows, r.threads, 0, stream_of(l)>>>(ds, dp, probs, geo, key, threshold, scale,
                                                                         drop);
  else
    softmax_backward_kernel<TS><<<rows, kRowThreads, 0, stream_of(l)>>>(ds, dp, probs, geo, key, threshold, scale,
                                                                         drop);
  ERL_CUDA_LAUNCHED();
}

// The operands of one call: element type and base pointers of Q/K/V, dO, Pd, dS as the GEMMs read them.
struct Operands {
  cudaDataType_t type;   // CUDA_R_32F or CUDA_R_16BF
  size_t elem;           // bytes per element
  const char* qkv;       // (B, T, 3C)
  const char* dout;      // (B, T, C)
  char* pd;              // (B, NH, T, T)
  char* ds;              // (B, NH, T, T)
};

// Head h of every sample as a strided batch, column-major views (see the header comment):
//   q/k/v: (HS, T), ld 3C, sample stride T*3C;  out/dout: (HS, T), ld C, stride T*C;  T x T blocks: ld T, stride NH*TT.
struct HeadViews {
  int T, HS, C;
  int64_t TT, NH;
  int64_t qkv_off(int h, int which) const { return static_cast<int64_t>(which) * C + static_cast<int64_t>(h) * HS; }
  int64_t o_off(int h) const { return static_cast<int64_t>(h) * HS; }
  int64_t tt_off(int h) const { return h * TT; }
};

// C(m, n)[b] = alpha * op(A)[b] op(B)[b], batch over samples (c_type fp32).
void sample_gemm(const Launch& l, const char* op, cudaDataType_t ab, bool ta, bool tb, int m, int n, int k, float alpha,
                 const void* A, int lda, int64_t sa, const void* B, int ldb, int64_t sb, float* C, int ldc, int64_t sc,
                 int batch) {
  GemmArgs g;
  g.trans_a = ta, g.trans_b = tb;
  g.m = m, g.n = n, g.k = k;
  g.alpha = alpha;
  g.ab_type = ab;
  g.A = A, g.lda = lda, g.stride_a = sa;
  g.B = B, g.ldb = ldb, g.stride_b = sb;
  g.C = C, g.ldc = ldc, g.stride_c = sc;
  g.batch = batch;
  gemm(l, op, g);
}

RowGeometry geometry(const AttentionShape& s) {
  return RowGeometry{s.Tn, s.NH, s.total_heads > 0 ? s.total_heads : s.NH, s.head_offset, s.sample_offset};
}

bool use_bf16(const Launch& l, const AttentionShape& s, const char* op) {
  return need_context(l, op).math() == MathMode::BF16 && s.Tn % 8 == 0 && s.HS % 8 == 0;
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

}  // namespace

int64_t attention_scratch_elems(const AttentionShape& s) {
  const int64_t B = s.B, TT = static_cast<int64_t>(s.Tn) * s.Tn, C = static_cast<int64_t>(s.NH) * s.HS;
  return 2 * B * s.NH * TT + 2 * B * s.Tn * C;
}

void attention_forward(Launch l, float* out, float* probs, float* scratch, const float* qkv, const uint8_t* key_valid,
                       const AttentionShape& s, const DropoutSpec& dropout) {
  const int T = s.Tn, HS = s.HS, NH = s.NH, C = NH * HS;
  const float scale = 1.0f / std::sqrt(static_cast<float>(HS));
  const bool drop = dropout.p > 0.0f, bf16 = use_bf16(l, s, "attention_forward");
  const uint32_t threshold = dropout_threshold(dropout.p);
  const float keep_scale = 1.0f / (1.0f - dropout.p);
  const Operands o = operands(l, scratch, qkv, nullptr, s, bf16);
  const HeadViews v{T, HS, C, static_cast<int64_t>(T) * T, NH};
  const int64_t s_qkv = static_cast<int64_t>(T) * 3 * C, s_o = static_cast<int64_t>(T) * C, s_tt = NH * v.TT;
  const auto at = [&](const char* base, int64_t off) { return base + off * static_cast<int64_t>(o.elem); };
  for (int h = 0; h < NH; ++h)  // S^T(col) (T_j, T_i) = op_T(K) Q  ==  row-major S (T_i, T_j)
    sample_gemm(l, "attention_forward", o.type, true, false, T, T, HS, scale, at(o.qkv, v.qkv_off(h, 1)), 3 * C, s_qkv,
                at(o.qkv, v.qkv_off(h, 0)), 3 * C, s_qkv, probs + v.tt_off(h), T, s_tt, s.B);
  const int64_t rows = static_cast<int64_t>(s.B) * NH * T;
  const bool write_pd = drop || bf16;  // fp32 without dropout: O = P V straight from probs
  if (bf16)
    softmax_dropout(l, rows, probs, reinterpret_cast<__nv_bfloat16*>(o.pd), key_valid, geometry(s), dropout.key,
                    threshold, keep_scale, drop, write_pd);
  else
    softmax_dropout(l, rows, probs, reinterpret_cast<float*>(o.pd), key_valid, geometry(s), dropout.key, threshold,
                    keep_scale, drop, write_pd);
  const char* pd = write_pd ? o.pd : reinterpret_cast<const char*>(probs);
  for (int h = 0; h < NH; ++h)  // O^T(col) (HS, T_i) = V^T(col) Pd^T(col)
    sample_gemm(l, "attention_forward", o.type, false, false, HS, T, T, 1.0f, at(o.qkv, v.qkv_off(h, 2)), 3 * C, s_qkv,
                at(pd, v.tt_off(h)), T, s_tt, out + v.o_off(h), C, s_o, s.B);
}

void attention_backward(Launch l, float* dqkv, float* scratch, const float* dout, const float* qkv, const float* probs,
                        const uint8_t* key_valid, const AttentionShape& s, const DropoutSpec& dropout) {
  const int T = s.Tn, HS = s.HS, NH = s.NH, C = NH * HS;
  const float scale = 1.0f / std::sqrt(static_cast<float>(HS));
  const bool drop = dropout.p > 0.0f, bf16 = use_bf16(l, s, "attention_backward");
  const uint32_t threshold = dropout_threshold(dropout.p);
  const float keep_scale = 1.0f / (1.0f - dropout.p);
  const Operands o = operands(l, scratch, qkv, dout, s, bf16);
  const HeadViews v{T, HS, C, static_cast<int64_t>(T) * T, NH};
  const int64_t s_qkv = static_cast<int64_t>(T) * 3 * C, s_o = static_cast<int64_t>(T) * C, s_tt = NH * v.TT;
  const int64_t rows = static_cast<int64_t>(s.B) * NH * T;
  const auto at = [&](const char* base, int64_t off) { return base + off * static_cast<int64_t>(o.elem); };
  float* dP = scratch + static_cast<int64_t>(s.B) * NH * v.TT;  // fp32 dPd -> dP (-> dS in place when fp32)

  const bool write_pd = drop || bf16;
  if (write_pd) {
    if (bf16)
      dropout_rows(l, rows, reinterpret_cast<__nv_bfloat16*>(o.pd), probs, geometry(s), dropout.key, threshold,
                   keep_scale, drop);
    else
      dropout_rows(l, rows, reinterpret_cast<float*>(o.pd), probs, geometry(s), dropout.key, threshold, keep_scale,
                   drop);
  }
  const char* pd = write_pd ? o.pd : reinterpret_cast<const char*>(probs);
  for (int h = 0; h < NH; ++h) {
    // dV^T(col) (HS, T_j) = dO^T(col) (HS, T_i) @ Pd (T_i, T_j)
    sample_gemm(l, "attention_backward", o.type, false, true, HS, T, T, 1.0f, at(o.dout, v.o_off(h)), C, s_o,
                at(pd, v.tt_off(h)), T, s_tt, dqkv + v.qkv_off(h, 2), 3 * C, s_qkv, s.B);
    // dPd row-major (T_i, T_j) == col-major (T_j, T_i) = op_T(V^T(col)) dO^T(col)
    sample_gemm(l, "attention_backward", o.type, true, false, T, T, HS, 1.0f, at(o.qkv, v.qkv_off(h, 2)), 3 * C, s_qkv,
                at(o.dout, v.o_off(h)), C, s_o, dP + v.tt_off(h), T, s_tt, s.B);
  }
  if (bf16)
    softmax_backward(l, rows, reinterpret_cast<__nv_bfloat16*>(o.ds), dP, probs, geometry(s), dropout.key, threshold,
                     keep_scale, drop);
  else
    softmax_backward(l, rows, dP, dP, probs, geometry(s), dropout.key, threshold, keep_scale, drop);
  const char* ds = bf16 ? o.ds : reinterpret_cast<const char*>(dP);
  for (int h = 0; h < NH; ++h) {
    // dQ^T(col) (HS, T_i) = scale * K^T(col) (HS, T_j) @ dS^T (T_j, T_i)
    sample_gemm(l, "attention_backward", o.type, false, false, HS, T, T, scale, at(o.qkv, v.qkv_off(h, 1)), 3 * C,
                s_qkv, at(ds, v.tt_off(h)), T, s_tt, dqkv + v.qkv_off(h, 0), 3 * C, s_qkv, s.B);
    // dK^T(col) (HS, T_j) = scale * Q^T(col) (HS, T_i) @ dS (T_i, T_j)
    sample_gemm(l, "attention_backward", o.type, false, true, HS, T, T, scale, at(o.qkv, v.qkv_off(h, 0)), 3 * C,
                s_qkv, at(ds, v.tt_off(h)), T, s_tt, dqkv + v.qkv_off(h, 1), 3 * C, s_qkv, s.B);
  }
}

}  // namespace erlangshen::cuda
