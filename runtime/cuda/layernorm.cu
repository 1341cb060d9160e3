// LayerNorm over the last axis (C), one block per row:
//   y = (x - mean) * rstd * w + b,  rstd = 1 / sqrt(var + eps)   (statistics in double, two passes, like the CPU)
//   y stored fp32, or bf16 (runtime/act.h: the same fp32 y rounded once); x read as stored, fp32 or bf16 (the
//   residual stream under train.residual=bf16, widened exactly)
// Backward (xhat = (x - mean) * rstd, g = dy * w), rows independent:
//   dx += rstd * (g - mean(g) - xhat * mean(g * xhat))
//   dw += sum_n dy * xhat;  db += sum_n dy      (deterministic two-stage column sums)
// Rows with C % 4 == 0 up to C = 2048 (aligned) take register-resident kernels: each element read once, 4 at a time;
// dw and db then come from one pass over dy and x (the same partition and order as two column sums).
// (A one-pass backward that also kept per-chunk partial column sums of dw and db measured slower on an H200, 38 ms
// against 36 ms per 1.3B step: 512 blocks walking ~100 rows each with two block reductions per row.)
// Fused with the dropout around them (the pre-LN encoder: every LayerNorm reads a residual stream just formed as
// h = resid + dropout(in), and every LayerNorm backward's dinp is the residual gradient the next op drops out):
//   forward   h = resid + dropout(in) formed in the register kernel's load and stored, then y = LN(h)
//   backward  dx = dropout'(dinp) stored by the register kernel right after its dinp store
// with dropout.cu's arithmetic and mask (Philox group of element i: (index_offset + i) / 4), so the same bits as
// dropout_residual_forward + layernorm_forward (layernorm_backward + dropout_backward), one read of h (of dinp)
// fewer. Where the register kernels or dropout.cu's 4-wide kernels do not apply, the entry points compose the ops.
#include <algorithm>
#include <initializer_list>
#include <type_traits>

#include "runtime/cuda/colsum.cuh"
#include "runtime/cuda/dropout.cuh"
#include "runtime/cuda/kernels.h"

namespace erlangshen::cuda {
namespace {

constexpr int kThreads = 256;

// The register forward's row source: x itself (stored as TI) ...
template <class TI>
struct LoadRows {
  const TI* x;
  __device__ float4 operator()(int64_t i) const { return load4(x + i); }
};
// A DropoutSpec on rows whose element i (a multiple of 4) has global index index_offset + i: its 4 elements are one
// Philox block when index_offset % 4 == 0. Without dropout, the values themselves.
struct GroupDropout {
  PhiloxKey key;
  uint32_t threshold = 0;
  float scale = 1.0f;
  bool drop = false;
  int64_t g0 = 0;  // Philox group of element 0: index_offset / 4
  GroupDropout(const DropoutSpec& d, int64_t index_offset)
      : key(d.key), drop(d.p > 0.0f), g0(index_offset / 4) {
    if (drop) threshold = dropout_threshold(d.p), scale = 1.0f / (1.0f - d.p);
  }
  __device__ float4 operator()(int64_t i, float4 v) const {
    return drop ? dropped4(v, philox_at(key, static_cast<uint64_t>(g0 + i / 4)), threshold, scale) : v;
  }
};

// ... or h = resid + dropout(in) (resid optional), stored to h as it is formed: dropout.cu's arithmetic
// (residual_add_kernel without dropout, dropout_residual4_kernel with it). The residual stream h and resid are
// stored as TS (fp32, or bf16: h rounded once, and the LayerNorm normalises h as stored, which its backward reads).
template <class TS, class TX>
struct ResidualDropoutRows {
  TS* h;
  const TS* resid;
  const TX* in;
  GroupDropout dropout;
  __device__ float4 operator()(int64_t i) const {
    const float4 v = dropout(i, load4(in + i));
    float4 o = resid ? load4(resid + i) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    o.x = o.x + v.x, o.y = o.y + v.y, o.z = o.z + v.z, o.w = o.w + v.w;
    store4(h + i, o);
    return as_stored4<TS>(o);
  }
};

// The register backward's epilogue on the 4 new dinp values at element i: nothing ...
struct NoEpilogue {
  __device__ void operator()(int64_t, float4) const {}
};
// ... or dx[i..i+3] = dropout'(dinp) in dx's type: dropout.cu's arithmetic (dropout_backward4_kernel; without dropout
// the value itself, rounded once when bf16).
template <class TD>
struct DropoutBackwardEpilogue {
  TD* dx;
  GroupDropout dropout;
  __device__ void operator()(int64_t i, float4 v) const { store4(dx + i, dropout(i, v)); }
};

// out (N, C) stored as T: fp32, or bf16 (y rounded once; mean / rstd fp32 either way); inp stored as TI.
template <class T, class TI>
__global__ void layernorm_forward_kernel(T* out, float* mean, float* rstd, const TI* inp, const float* w,
                                         const float* b, int C, double eps) {
  __shared__ double smem[32];
  const int64_t row = blockIdx.x;
  const TI* x = inp + row * C;
  T* y = out + row * C;
  double s = 0.0;
  for (int c = threadIdx.x; c < C; c += blockDim.x) s += to_f32(x[c]);
  const double m = block_sum(s, smem) / C;
  double v = 0.0;
  for (int c = threadIdx.x; c < C; c += blockDim.x) {
    const double d = to_f32(x[c]) - m;
    v += d * d;
  }
  const double r = 1.0 / sqrt(block_sum(v, smem) / C + eps);
  const float mt = static_cast<float>(m), rt = static_cast<float>(r);
  for (int c = threadIdx.x; c < C; c += blockDim.x) y[c] = from_f32<T>((to_f32(x[c]) - mt) * rt * w[c] + b[c]);
  if (threadIdx.x == 0) {
    mean[row] = mt;
    rstd[row] = rt;
  }
}

// Register-resident rows (C % 4 == 0, C <= 4 * kThreads * G, rows aligned to 4 floats): thread t holds the groups of
// 4 columns g = t + k kThreads (k < G), read once; the same formulas as the kernels above and below.
// The row comes from `src` (LoadRows, or the fused ResidualDropoutRows).
template <class T, int G, class Src>
__global__ void layernorm_forward4_kernel(T* out, float* mean, float* rstd, Src src, const float* w, const float* b,
                                          int C, double eps) {
  __shared__ double smem[32];
  const int64_t row = blockIdx.x;
  const int groups = C / 4;
  float4 v[G];
  double s = 0.0;
#pragma unroll
  for (int k = 0; k < G; ++k) {
    const int g = threadIdx.x + k * kThreads;
    if (g >= groups) continue;
    v[k] = src(row * C + 4 * g);
    s += static_cast<double>(v[k].x) + v[k].y + v[k].z + v[k].w;
  }
  const double m = block_sum(s, smem) / C;
  double var = 0.0;
#pragma unroll
  for (int k = 0; k < G; ++k) {
    if (threadIdx.x + k * kThreads >= groups) continue;
    for (int e = 0; e < 4; ++e) {
      const double d = lane(v[k], e) - m;
      var += d * d;
    }
  }
  const double r = 1.0 / sqrt(block_sum(var, smem) / C + eps);
  const float mt = static_cast<float>(m), rt = static_cast<float>(r);
#pragma unroll
  for (int k = 0; k < G; ++k) {
    const int g = threadIdx.x + k * kThreads;
    if (g >= groups) continue;
    const float4 wv = load4(w + 4 * g), bv = load4(b + 4 * g);
    store4(out + row * C + 4 * g,
           make_float4((v[k].x - mt) * rt * wv.x + bv.x, (v[k].y - mt) * rt * wv.y + bv.y,
                       (v[k].z - mt) * rt * wv.z + bv.z, (v[k].w - mt) * rt * wv.w + bv.w));
  }
  if (threadIdx.x == 0) {
    mean[row] = mt;
    rstd[row] = rt;
  }
}

// One row of the register backward, by the whole block: thread t's groups of 4 columns g = t + k kThreads are read
// once (dy stored as TD, x as TI: fp32, or bf16 read exactly), dinp (TG) += LN'(dy) is stored (a bf16 dinp's sum
// rounded once), then epi(i, new dinp[i..i+3] as stored) (NoEpilogue, or the fused DropoutBackwardEpilogue).
// acc(k, dy, xhat) sees each group's dy and xhat as they are read (the one-pass form's column sums).
template <int G, class TD, class TI, class TG, class Epi, class Acc>
__device__ __forceinline__ void backward_row(int64_t row, TG* dinp, const TD* dout, const TI* inp, const float* w,
                                             float m, float r, int C, float* smem, const Epi& epi, Acc&& acc) {
  const int groups = C / 4;
  float4 gv[G], xh[G];  // g = dy * w and xhat per column
  float sg = 0.0f, sgx = 0.0f;
#pragma unroll
  for (int k = 0; k < G; ++k) {
    const int g = threadIdx.x + k * kThreads;
    if (g >= groups) continue;
    const float4 dy = load4(dout + row * C + 4 * g), x = load4(inp + row * C + 4 * g), wv = load4(w + 4 * g);
    gv[k] = make_float4(dy.x * wv.x, dy.y * wv.y, dy.z * wv.z, dy.w * wv.w);
    xh[k] = make_float4((x.x - m) * r, (x.y - m) * r, (x.z - m) * r, (x.w - m) * r);
    for (int e = 0; e < 4; ++e) {
      sg += lane(gv[k], e);
      sgx += lane(gv[k], e) * lane(xh[k], e);
    }
    acc(k, dy, xh[k]);
  }
  const float mg = block_sum(sg, smem) / C;
  const float mgx = block_sum(sgx, smem) / C;
#pragma unroll
  for (int k = 0; k < G; ++k) {
    const int g = threadIdx.x + k * kThreads;
    if (g >= groups) continue;
    TG* dx = dinp + row * C + 4 * g;
    float4 d = load4(dx);
    for (int e = 0; e < 4; ++e) lane(d, e) += r * (lane(gv[k], e) - mg - lane(xh[k], e) * mgx);
    store4(dx, d);
    epi(row * C + 4 * g, as_stored4<TG>(d));
  }
}

// The two-pass form's rows: a block per row (the column sums follow in layernorm_dwdb_partial4_kernel).
template <int G, class TD, class TI, class TG, class Epi>
__global__ void layernorm_backward_dinp4_kernel(TG* dinp, const TD* dout, const TI* inp, const float* w,
                                                const float* mean, const float* rstd, int C, Epi epi) {
  __shared__ float smem[32];
  const int64_t row = blockIdx.x;
  backward_row<G>(row, dinp, dout, inp, w, mean[row], rstd[row], C, smem, epi, [](int, float4, float4) {});
}

// dw and db partial column sums in one pass over dy and x: colsum.cuh's partition and summation order (so the same
// bits as two colsum_add calls), 4 columns a thread, dy read once for both:
//   partial_w[r][c] = sum over chunk r of dy * xhat,   partial_b[r][c] = sum over chunk r of dy
template <class TD, class TI>
__global__ void layernorm_dwdb_partial4_kernel(float* partial_w, float* partial_b, const TD* dout, const TI* inp,
                                               const float* mean, const float* rstd, int N, int C,
                                               int rows_per_chunk) {
  __shared__ float4 lanes_w[8][32], lanes_b[8][32];
  const int c = (blockIdx.x * 32 + threadIdx.x) * 4;
  const int n0 = blockIdx.y * rows_per_chunk;
  const int n1 = min(N, n0 + rows_per_chunk);
  float4 sw = make_float4(0.0f, 0.0f, 0.0f, 0.0f), sb = sw;
  if (c < C)
    for (int n = n0 + threadIdx.y; n < n1; n += 8) {
      const int64_t i = static_cast<int64_t>(n) * C + c;
      const float4 d = load4(dout + i), v = load4(inp + i);
      const float m = mean[n], r = rstd[n];
      sw.x += d.x * (v.x - m) * r, sw.y += d.y * (v.y - m) * r;
      sw.z += d.z * (v.z - m) * r, sw.w += d.w * (v.w - m) * r;
      sb.x += d.x, sb.y += d.y, sb.z += d.z, sb.w += d.w;
    }
  lanes_w[threadIdx.y][threadIdx.x] = sw;
  lanes_b[threadIdx.y][threadIdx.x] = sb;
  __syncthreads();
  if (threadIdx.y == 0 && c < C) {
    store_lane_sums4(lanes_w, partial_w + static_cast<int64_t>(blockIdx.y) * C + c);
    store_lane_sums4(lanes_b, partial_b + static_cast<int64_t>(blockIdx.y) * C + c);
  }
}

// The backward in one pass (ContextOptions::fused_layernorm_columns): block b walks rows [b R, b R + R) one after
// the other, each as layernorm_backward_dinp4_kernel does (dinp, then epi), and keeps its threads' columns' sums of
// dy * xhat and dy over those rows in registers; they are stored as row b of partial_w / partial_b, which
// colsum_finish_kernel then sums over the blocks (in block order: deterministic, though not colsum.cuh's partition,
// so other bits than the two-pass form). dy and x are read once.
// (At most 64 registers a thread, so that 4 blocks of 256 threads, 4 rows in flight, fit an SM; 70 without the bound.)
template <int G, class TD, class TI, class TG, class Epi>
__global__ void __launch_bounds__(kThreads, 4)
    layernorm_backward_fused4_kernel(TG* dinp, float* partial_w, float* partial_b, const TD* dout, const TI* inp,
                                     const float* w, const float* mean, const float* rstd, int N, int C,
                                     int rows_per_block, Epi epi) {
  __shared__ float smem[32];
  const int groups = C / 4;
  const int64_t n0 = int64_t(blockIdx.x) * rows_per_block, n1 = min(int64_t(N), n0 + rows_per_block);
  float4 pw[G], pb[G];  // partial column sums of dy * xhat and dy
#pragma unroll
  for (int k = 0; k < G; ++k) pw[k] = pb[k] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  for (int64_t row = n0; row < n1; ++row)
    backward_row<G>(row, dinp, dout, inp, w, mean[row], rstd[row], C, smem, epi, [&](int k, float4 dy, float4 xh) {
      pw[k].x += dy.x * xh.x, pw[k].y += dy.y * xh.y, pw[k].z += dy.z * xh.z, pw[k].w += dy.w * xh.w;
      pb[k].x += dy.x, pb[k].y += dy.y, pb[k].z += dy.z, pb[k].w += dy.w;
    });
#pragma unroll
  for (int k = 0; k < G; ++k) {
    const int g = threadIdx.x + k * kThreads;
    if (g >= groups) continue;
    store4(partial_w + int64_t(blockIdx.x) * C + 4 * g, pw[k]);
    store4(partial_b + int64_t(blockIdx.x) * C + 4 * g, pb[k]);
  }
}

// Groups of 4 columns per thread the register-resident kernels need for a row of C (0: they do not apply).
int register_groups(int C, std::initializer_list<const void*> tensors) {
  if (C % 4 != 0 || C > 4 * kThreads * 2) return 0;
  for (const void* p : tensors)
    if (!aligned16(p)) return 0;
  return C <= 4 * kThreads ? 1 : 2;
}

template <class TD, class TI, class TG>
__global__ void layernorm_backward_dinp_kernel(TG* dinp, const TD* dout, const TI* inp, const float* w,
                                               const float* mean, const float* rstd, int C) {
  __shared__ float smem[32];
  const int64_t row = blockIdx.x;
  const TI* x = inp + row * C;
  const TD* dy = dout + row * C;
  TG* dx = dinp + row * C;
  const float m = mean[row], r = rstd[row];
  float sg = 0.0f, sgx = 0.0f;
  for (int c = threadIdx.x; c < C; c += blockDim.x) {
    const float g = to_f32(dy[c]) * w[c];
    sg += g;
    sgx += g * (to_f32(x[c]) - m) * r;
  }
  const float mg = block_sum(sg, smem) / C;
  const float mgx = block_sum(sgx, smem) / C;
  for (int c = threadIdx.x; c < C; c += blockDim.x) {
    const float xhat = (to_f32(x[c]) - m) * r;
    dx[c] = from_f32<TG>(to_f32(dx[c]) + r * (to_f32(dy[c]) * w[c] - mg - xhat * mgx));
  }
}

// f(n, c) = dy[n, c] * xhat[n, c], dy stored as TD, x as TI
template <class TD, class TI>
struct DyXhat {
  const TD* dy;
  const TI* x;
  const float *mean, *rstd;
  int C;
  __device__ float operator()(int n, int c) const {
    const int64_t i = static_cast<int64_t>(n) * C + c;
    return to_f32(dy[i]) * (to_f32(x[i]) - mean[n]) * rstd[n];
  }
  __device__ float4 at4(int n, int c) const {
    const int64_t i = static_cast<int64_t>(n) * C + c;
    const float4 d = load4(dy + i), v = load4(x + i);
    const float m = mean[n], r = rstd[n];
    return make_float4(d.x * (v.x - m) * r, d.y * (v.y - m) * r, d.z * (v.z - m) * r, d.w * (v.w - m) * r);
  }
  bool vec4_ok() const { return aligned4(dy) && aligned4(x); }
};

// The register forward with G groups a thread, the row from src.
template <class T, class Src>
void layernorm_forward4(const Launch& l, int G, T* out, float* mean, float* rstd, Src src, const float* weight,
                        const float* bias, int N, int C, double eps) {
  if (G == 1)
    ERL_KERNEL(N, kThreads, 0, stream_of(l), layernorm_forward4_kernel<T, 1, Src>)(out, mean, rstd, src, weight, bias,
                                                                                   C, eps);
  else
    ERL_KERNEL(N, kThreads, 0, stream_of(l), layernorm_forward4_kernel<T, 2, Src>)(out, mean, rstd, src, weight, bias,
                                                                                   C, eps);
  ERL_CUDA_LAUNCHED();
}

// The forward launch for out stored as T, inp as TI.
template <class T, class TI>
void layernorm_forward_rows(const Launch& l, T* out, float* mean, float* rstd, const TI* inp, const float* weight,
                            const float* bias, int N, int C, double eps) {
  const int G = register_groups(C, {out, inp, weight, bias});
  if (G > 0) return layernorm_forward4(l, G, out, mean, rstd, LoadRows<TI>{inp}, weight, bias, N, C, eps);
  ERL_KERNEL(N, kThreads, 0, stream_of(l), layernorm_forward_kernel)(out, mean, rstd, inp, weight, bias, C, eps);
  ERL_CUDA_LAUNCHED();
}

// dinp (+)= LN'(dout) rows (the register kernel with epi where it applies, else the generic one; epi then unused).
template <class TD, class TI, class TG, class Epi>
void layernorm_backward_rows(const Launch& l, int G, TG* dinp, const TD* dout, const TI* inp,
                             const float* weight, const float* mean, const float* rstd, int N, int C, Epi epi) {
  if (G == 1)
    ERL_KERNEL(N, kThreads, 0, stream_of(l), layernorm_backward_dinp4_kernel<1, TD, TI, TG, Epi>)(dinp, dout, inp, weight,
                                                                                          mean, rstd, C, epi);
  else if (G == 2)
    ERL_KERNEL(N, kThreads, 0, stream_of(l), layernorm_backward_dinp4_kernel<2, TD, TI, TG, Epi>)(dinp, dout, inp, weight,
                                                                                          mean, rstd, C, epi);
  else
    ERL_KERNEL(N, kThreads, 0, stream_of(l), layernorm_backward_dinp_kernel<TD, TI, TG>)(dinp, dout, inp, weight, mean,
                                                                                     rstd, C);
  ERL_CUDA_LAUNCHED();
}

// The column sums of the backward: dw += sum_n dy xhat, db += sum_n dy.
template <class TD, class TI>
void layernorm_backward_columns(const Launch& l, float* dweight, float* dbias, const TD* dout, const TI* inp,
                                const float* mean, const float* rstd, int N, int C) {
  if (dweight && dbias && C % 4 == 0 && aligned4(dout) && aligned4(inp)) {
    const int rows_per_chunk = colsum_rows_per_chunk(N), R = (N + rows_per_chunk - 1) / rows_per_chunk;
    Context& ctx = need_context(l, "layernorm_backward");
    float* partial_w = static_cast<float*>(ctx.scratch(sizeof(float) * 2 * size_t(R) * C, "layernorm_backward"));
    float* partial_b = partial_w + size_t(R) * C;
    ERL_KERNEL(dim3((C / 4 + 31) / 32, R), dim3(32, 8), 0, stream_of(l), layernorm_dwdb_partial4_kernel<TD, TI>)(
        partial_w, partial_b, dout, inp, mean, rstd, N, C, rows_per_chunk);
    ERL_CUDA_LAUNCHED();
    ERL_KERNEL((C + 255) / 256, 256, 0, stream_of(l), colsum_finish_kernel)(dweight, partial_w, R, C);
    ERL_CUDA_LAUNCHED();
    ERL_KERNEL((C + 255) / 256, 256, 0, stream_of(l), colsum_finish_kernel)(dbias, partial_b, R, C);
    ERL_CUDA_LAUNCHED();
    return;
  }
  if (dweight) colsum_add(l, "layernorm_backward", dweight, N, C, DyXhat<TD, TI>{dout, inp, mean, rstd, C});
  if (dbias) colsum_add(l, "layernorm_backward", dbias, N, C, rows_of(dout, C));
}

// The one-pass backward (layernorm_backward_fused4_kernel) where the Context asks for it, the register kernels apply
// (G > 0), both column sums are wanted and their partials fit the Context's scratch: dinp (+ epi), dweight and
// dbias. Returns false, having done nothing, otherwise.
template <class TD, class TI, class TG, class Epi>
bool layernorm_backward_one_pass(const Launch& l, int G, TG* dinp, float* dweight, float* dbias, const TD* dout,
                                 const TI* inp, const float* weight, const float* mean, const float* rstd, int N, int C,
                                 Epi epi) {
  if (G == 0 || !dweight || !dbias) return false;
  Context& ctx = need_context(l, "layernorm_backward");
  if (!ctx.options().fused_layernorm_columns) return false;
  // ~16 rows a block (3328 blocks for the 1.3B model's 53248 tokens), more where the partials would outgrow the
  // scratch
  const size_t row_bytes = sizeof(float) * 2 * size_t(C);
  const int max_blocks = static_cast<int>(std::min<size_t>(ctx.options().scratch_bytes / row_bytes, 1 << 30));
  if (max_blocks < 1) return false;
  const int rows_per_block = std::max(16, (N + max_blocks - 1) / max_blocks);
  const int R = (N + rows_per_block - 1) / rows_per_block;
  float* partial_w = static_cast<float*>(ctx.scratch(row_bytes * size_t(R), "layernorm_backward"));
  float* partial_b = partial_w + size_t(R) * C;
  if (G == 1)
    ERL_KERNEL(R, kThreads, 0, stream_of(l), layernorm_backward_fused4_kernel<1, TD, TI, TG, Epi>)(
        dinp, partial_w, partial_b, dout, inp, weight, mean, rstd, N, C, rows_per_block, epi);
  else
    ERL_KERNEL(R, kThreads, 0, stream_of(l), layernorm_backward_fused4_kernel<2, TD, TI, TG, Epi>)(
        dinp, partial_w, partial_b, dout, inp, weight, mean, rstd, N, C, rows_per_block, epi);
  ERL_CUDA_LAUNCHED();
  ERL_KERNEL((C + 255) / 256, 256, 0, stream_of(l), colsum_finish_kernel)(dweight, partial_w, R, C);
  ERL_CUDA_LAUNCHED();
  ERL_KERNEL((C + 255) / 256, 256, 0, stream_of(l), colsum_finish_kernel)(dbias, partial_b, R, C);
  ERL_CUDA_LAUNCHED();
  return true;
}

// Whether the fused dropout can run 4 elements at a time on rows of C: dropout.cu's 4-wide condition.
bool dropout_groups_aligned(int64_t index_offset, int C) { return index_offset % 4 == 0 && C % 4 == 0; }

// An Act's data as the kernels' type TS (float or __nv_bfloat16); nullptr for an empty Act. The caller has checked
// that a non-empty `a` is stored as TS.
template <class TS>
const TS* data_as(Act<const float> a) {
  if constexpr (std::is_same_v<TS, float>) return a.f;
  else return device_bf16(a.h);
}

// The Context check of an entry point whose Act arguments may be bf16.
void check_storage(const Launch& l, const char* op, std::initializer_list<bool> bf16_flags) {
  for (bool b : bf16_flags)
    if (b) {
      need_bf16_storage_context(l, op);
      return;
    }
}

}  // namespace

void layernorm_forward(Launch l, float* out, float* mean, float* rstd, const float* inp, const float* weight,
                       const float* bias, int N, int C, double eps) {
  if (N <= 0) return;
  layernorm_forward_rows(l, out, mean, rstd, inp, weight, bias, N, C, eps);
}

void layernorm_forward(Launch l, Act<float> out, float* mean, float* rstd, Act<const float> inp, const float* weight,
                       const float* bias, int N, int C, double eps) {
  check_storage(l, "layernorm_forward", {out.is_bf16(), inp.is_bf16()});
  if (N <= 0) return;
  visit(out, [&](auto* y) {
    visit(inp, [&](const auto* x) { layernorm_forward_rows(l, y, mean, rstd, x, weight, bias, N, C, eps); });
  });
}

void layernorm_backward(Launch l, float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                        const float* weight, const float* mean, const float* rstd, int N, int C) {
  layernorm_backward(l, Act<float>(dinp), dweight, dbias, Act<const float>(dout), Act<const float>(inp), weight, mean,
                     rstd, N, C);
}

void layernorm_backward(Launch l, Act<float> dinp, float* dweight, float* dbias, Act<const float> dout,
                        Act<const float> inp, const float* weight, const float* mean, const float* rstd, int N, int C) {
  check_storage(l, "layernorm_backward", {dinp.is_bf16(), dout.is_bf16(), inp.is_bf16()});
  if (N <= 0) return;
  const int G = register_groups(C, {data_of(dinp), data_of(dout), data_of(inp), weight});
  visit(dout, [&](const auto* dy) {
    visit(inp, [&](const auto* x) {
      visit(dinp, [&](auto* dg) {
        if (layernorm_backward_one_pass(l, G, dg, dweight, dbias, dy, x, weight, mean, rstd, N, C, NoEpilogue{}))
          return;
        layernorm_backward_rows(l, G, dg, dy, x, weight, mean, rstd, N, C, NoEpilogue{});
        layernorm_backward_columns(l, dweight, dbias, dy, x, mean, rstd, N, C);
      });
    });
  });
}

void dropout_residual_layernorm_forward(Launch l, Act<float> h, Act<float> out, float* mean, float* rstd,
                                        Act<const float> resid, Act<const float> in, const float* weight,
                                        const float* bias, int N, int C, double eps, const DropoutSpec& d,
                                        int64_t index_offset) {
  ERL_CHECK(resid.empty() || resid.is_bf16() == h.is_bf16(),
            "cuda::dropout_residual_layernorm_forward: resid and h are the residual stream: one storage for both");
  check_storage(l, "dropout_residual_layernorm_forward", {h.is_bf16(), out.is_bf16(), in.is_bf16()});
  if (N <= 0) return;
  const int G = register_groups(C, {data_of(h), data_of(out), data_of(resid), data_of(in), weight, bias});
  if (G == 0 || !dropout_groups_aligned(index_offset, C)) {  // the ops one after the other
    dropout_residual_forward(l, h, resid, in, int64_t(N) * C, d, index_offset);
    return layernorm_forward(l, out, mean, rstd, Act<const float>(h), weight, bias, N, C, eps);
  }
  visit(h, [&](auto* hs) {
    using TS = std::remove_pointer_t<decltype(hs)>;
    visit(in, [&](const auto* x) {
      using TX = std::remove_const_t<std::remove_pointer_t<decltype(x)>>;
      const ResidualDropoutRows<TS, TX> src{hs, data_as<TS>(resid), x, GroupDropout(d, index_offset)};
      visit(out, [&](auto* y) { layernorm_forward4(l, G, y, mean, rstd, src, weight, bias, N, C, eps); });
    });
  });
}

void layernorm_backward_dropout(Launch l, Act<float> dinp, float* dweight, float* dbias, Act<float> dx,
                                Act<const float> dout, Act<const float> inp, const float* weight, const float* mean,
                                const float* rstd, int N, int C, const DropoutSpec& d, int64_t index_offset) {
  check_storage(l, "layernorm_backward_dropout", {dinp.is_bf16(), dx.is_bf16(), dout.is_bf16(), inp.is_bf16()});
  const void* dx_data = data_of(Act<const float>(dx));
  ERL_CHECK(dx_data != data_of(dout) && dx_data != data_of(inp) && dx_data != data_of(dinp),
            "cuda::layernorm_backward_dropout: dx must not alias dinp, dout or inp (the column sums read them after)");
  if (N <= 0) return;
  const int G = register_groups(C, {data_of(dinp), data_of(dout), data_of(inp), weight, data_of(dx)});
  if (G == 0 || !dropout_groups_aligned(index_offset, C)) {  // the ops one after the other
    layernorm_backward(l, dinp, dweight, dbias, dout, inp, weight, mean, rstd, N, C);
    return dropout_backward(l, dx, Act<const float>(dinp), int64_t(N) * C, d, index_offset);
  }
  visit(dout, [&](const auto* dy) {
    visit(inp, [&](const auto* xi) {
      visit(dx, [&](auto* x) {
        using TX = std::remove_pointer_t<decltype(x)>;
        visit(dinp, [&](auto* dg) {
          const DropoutBackwardEpilogue<TX> epi{x, GroupDropout(d, index_offset)};
          if (layernorm_backward_one_pass(l, G, dg, dweight, dbias, dy, xi, weight, mean, rstd, N, C, epi)) return;
          layernorm_backward_rows(l, G, dg, dy, xi, weight, mean, rstd, N, C, epi);
          layernorm_backward_columns(l, dweight, dbias, dy, xi, mean, rstd, N, C);
        });
      });
    });
  });
}

}  // namespace erlangshen::cuda
