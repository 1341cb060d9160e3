// The row kernels of attention (runtime/cuda/attention.cu), over the (sample, head, query) rows of T scores, all
// B x NH x T rows in one launch:
//   forward   P = softmax(S) over the valid keys, from fp32 S into probs as stored (fp32: in place over S; bf16:
//             rounded once);  Pd = dropout(P as stored) (fp32 or bf16). Or (register kernels, bf16 S) S stays the
//             saved state and each row's (max, 1 / sum) is stored instead of P
//   backward  dP = dropout'(dPd);  dS = P * (dP - sum_j P dP) (fp32 or bf16);  Pd recomputed from P and Philox in
//             the same pass (P read as stored, or recomputed from S and the row statistics as the forward formed it:
//             the same Pd as the forward's)
// Dropout element (b, h, i, j) is keyed by the global index ((sample_offset + b) * total_heads + head_offset + h)
// * T*T + i*T + j, as the CPU backend (runtime/philox.h). Two implementations: register-resident kernels (a warp per
// row, each lane holding groups of 4 elements: one read and one write per element) where T % 4 == 0 and T <= 1024
// with 16-byte-aligned rows, and generic strided kernels (a block per row) for any T.
#pragma once
#include <cuda_bf16.h>

#include <algorithm>
#include <initializer_list>
#include <type_traits>

#include "runtime/cuda/dropout.cuh"
#include "runtime/cuda/storage.cuh"
#include "runtime/philox.h"

namespace erlangshen::cuda::attention_rows {

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

// pd row <- dropout(p row) (or p itself when !drop), in pd's element type; p fp32 or bf16.
template <class TP, class TR>
__device__ void write_dropped_row(TP* pd, const TR* p, int T, uint64_t base, PhiloxKey key, uint32_t threshold,
                                  float scale, bool drop) {
  for (int j0 = 4 * threadIdx.x; j0 < T; j0 += 4 * blockDim.x) {
    bool keep[4] = {true, true, true, true};
    if (drop) keep4(keep, key, base + j0, threshold, min(4, T - j0));
    for (int w = 0; w < 4 && j0 + w < T; ++w) {
      const float v = to_f32(p[j0 + w]);
      store(pd + j0 + w, drop ? (keep[w] ? v * scale : 0.0f) : v);
    }
  }
}

// One block per row: probs row <- softmax(S row, masked) as stored (TR); if write_pd: pd row <- dropout(probs row as
// stored). The S row (fp32) is normalised in place first and then holds the stored values; probs may be S itself
// (fp32).
template <class TR, class TP>
__global__ void softmax_dropout_kernel(float* scores, TR* probs, TP* pd, const uint8_t* key_valid, RowGeometry geo,
                                       PhiloxKey key, uint32_t threshold, float scale, bool drop, bool write_pd) {
  __shared__ float smem[32];
  const int64_t row = blockIdx.x;
  const int T = geo.T;
  const uint8_t* valid = key_valid + static_cast<int64_t>(geo.sample(row)) * T;
  float* p = scores + row * T;
  TR* q = probs + row * T;
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
  for (int j = threadIdx.x; j < T; j += blockDim.x) {
    const float v = as_stored<TR>(p[j] * inv);
    p[j] = v;
    store(q + j, v);  // the same element p[j] when probs is the S buffer
  }
  if (!write_pd) return;
  __syncthreads();  // the row is re-read with a different thread-to-element mapping
  write_dropped_row(pd + row * T, p, T, geo.drop_index(row), key, threshold, scale, drop);
}

// dP = dropout'(dPd), dPd fp32 or bf16 (bf16 math: the GEMM's result rounded once), read twice and never written;
// ds row = P * (dP - sum_j P dP), in ds's element type (ds may alias dp when both are fp32: every element is read
// in the first loop, before the block reduction, and written in the second); pd row = dropout(P) as well when pd is
// set (the backward's Pd for dV, from the P this kernel reads anyway). P as stored: fp32 or bf16 (TR).
template <class TS, class TD, class TR>
__global__ void softmax_backward_kernel(TS* ds, TS* pd, const TD* dp, const TR* probs, RowGeometry geo, PhiloxKey key,
                                        uint32_t threshold, float scale, bool drop) {
  __shared__ float smem[32];
  const int64_t row = blockIdx.x;
  const int T = geo.T;
  const TR* p = probs + row * T;
  const TD* d = dp + row * T;
  const uint64_t base = geo.drop_index(row);
  // dP for the group j0 .. j0+3 of this row
  auto dropped = [&](int j0, float dv[4]) {
    bool keep[4] = {true, true, true, true};
    if (drop) keep4(keep, key, base + j0, threshold, min(4, T - j0));
    for (int w = 0; w < 4; ++w) {
      const float x = j0 + w < T ? to_f32(d[j0 + w]) : 0.0f;
      dv[w] = drop ? (keep[w] ? x * scale : 0.0f) : x;
    }
  };
  float dot = 0.0f;
  for (int j0 = 4 * threadIdx.x; j0 < T; j0 += 4 * blockDim.x) {
    float dv[4];
    dropped(j0, dv);
    for (int w = 0; w < 4 && j0 + w < T; ++w) dot += to_f32(p[j0 + w]) * dv[w];
  }
  dot = block_sum(dot, smem);
  TS* out = ds + row * T;
  for (int j0 = 4 * threadIdx.x; j0 < T; j0 += 4 * blockDim.x) {
    float dv[4];
    dropped(j0, dv);
    for (int w = 0; w < 4 && j0 + w < T; ++w) store(out + j0 + w, to_f32(p[j0 + w]) * (dv[w] - dot));
  }
  if (pd) write_dropped_row(pd + row * T, p, T, base, key, threshold, scale, drop);
}

// ---- Register-resident row kernels: T % 4 == 0, T <= 4 * 32 * kMaxGroups (1024), 16-byte aligned rows ----
// One warp per row, kWarpRows rows a block: lane l owns the groups of 4 consecutive elements g = l + 32 k (k < G),
// one float4 load of each input, every pass over the row in registers, one store of each output; the row's max and
// sums are warp shuffles (fixed butterfly: every lane gets the same bits), no shared memory and no __syncthreads,
// so an SM keeps many rows in flight (a block per row with 128 threads and two block reductions kept a quarter as
// many). A group starts at a multiple of 4 of the global dropout index (T % 4 == 0), so its 4 keep bits are exactly
// one Philox block, as keep4's aligned case.
constexpr int kMaxGroups = 8;
constexpr int kWarpRows = 4;  // rows (warps) per block

// The row of this warp, or -1 past the last row (the whole warp then returns: no collective is left half-done).
__device__ __forceinline__ int64_t warp_row(int64_t rows) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarpRows + (threadIdx.x >> 5);
  return row < rows ? row : -1;
}

template <class T>
__device__ __forceinline__ void store4(T* dst, float a, float b, float c, float d) {
  cuda::store4(dst, make_float4(a, b, c, d));
}

__device__ __forceinline__ void keep_group(bool keep[4], PhiloxKey key, uint64_t g, uint32_t threshold, bool drop) {
  if (!drop) {
    keep[0] = keep[1] = keep[2] = keep[3] = true;
    return;
  }
  const Philox4 r = philox_at(key, g >> 2);
#pragma unroll
  for (int w = 0; w < 4; ++w) keep[w] = r.v[w] >= threshold;
}

// dst[0..3] = dropout(q) for the group at global dropout index g (a multiple of 4: one Philox block; dropout.cuh),
// or q itself when !drop.
template <class TP>
__device__ __forceinline__ void store_dropped_group(TP* dst, float4 q, PhiloxKey key, uint64_t g, uint32_t threshold,
                                                    float scale, bool drop) {
  cuda::store4(dst, drop ? dropped4(q, philox_at(key, g >> 2), threshold, scale) : q);
}

// scores (TSc: fp32, or bf16 as the QK^T GEMM rounded them) -> probs as stored (TR; may be the scores buffer itself
// when both are fp32), Pd from the stored values. kStats (the saved state is S itself: attention.cu): instead of
// probs, stats[row] = (max, 1 / sum) over the valid keys, from which softmax_backward_rows4 recomputes the same P.
template <class TSc, class TR, class TP, int G, bool kStats>
__global__ void softmax_dropout_rows4(const TSc* scores, TR* probs, TP* pd, float2* stats, const uint8_t* key_valid,
                                      int64_t rows, RowGeometry geo, PhiloxKey key, uint32_t threshold, float scale,
                                      bool drop, bool write_pd) {
  const int64_t row = warp_row(rows);
  if (row < 0) return;
  const int lane_id = threadIdx.x & 31;
  const int T = geo.T, groups = T / 4;
  const uint8_t* valid = key_valid + static_cast<int64_t>(geo.sample(row)) * T;
  const TSc* p = scores + row * T;
  float4 v[G];
  unsigned valid_bits = 0;
  float mx = -INFINITY;
#pragma unroll
  for (int k = 0; k < G; ++k) {
    const int g = lane_id + 32 * k;
    if (g >= groups) continue;
    v[k] = load4(p + 4 * g);
#pragma unroll
    for (int w = 0; w < 4; ++w)
      if (valid[4 * g + w]) {
        valid_bits |= 1u << (4 * k + w);
        mx = fmaxf(mx, lane(v[k], w));
      }
  }
  mx = warp_max(mx);
  float sum = 0.0f;
#pragma unroll
  for (int k = 0; k < G; ++k)
#pragma unroll
    for (int w = 0; w < 4; ++w) {
      const bool on = (valid_bits >> (4 * k + w)) & 1u;
      lane(v[k], w) = on ? expf(lane(v[k], w) - mx) : 0.0f;
      sum += lane(v[k], w);
    }
  sum = warp_sum(sum);
  const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
  const uint64_t base = geo.drop_index(row);
  if (kStats && lane_id == 0) stats[row] = make_float2(mx, inv);
#pragma unroll
  for (int k = 0; k < G; ++k) {
    const int g = lane_id + 32 * k;
    if (g >= groups) continue;
    float4 q = v[k];
    q.x *= inv, q.y *= inv, q.z *= inv, q.w *= inv;
    q = as_stored4<TR>(q);
    if (!kStats) cuda::store4(probs + row * T + 4 * g, q);
    if (write_pd) store_dropped_group(pd + row * T + 4 * g, q, key, base + 4 * g, threshold, scale, drop);
  }
}

// ds (may alias dp: every thread reads its groups before writing them) = P * (dP - sum_j P dP), dP = dropout'(dPd);
// pd = dropout(P) too when set, from the keep bits computed for dP. kFromScores: probs holds S and stats[row] = (max,
// 1 / sum) (softmax_dropout_rows4's kStats), and P is recomputed as that kernel formed it: the same bits.
template <class TS, class TD, class TR, int G, bool kFromScores>
__global__ void softmax_backward_rows4(TS* ds, TS* pd, const TD* dp, const TR* probs, const float2* stats,
                                       const uint8_t* key_valid, int64_t rows, RowGeometry geo, PhiloxKey key,
                                       uint32_t threshold, float scale, bool drop) {
  const int64_t row = warp_row(rows);
  if (row < 0) return;
  const int lane_id = threadIdx.x & 31;
  const int T = geo.T, groups = T / 4;
  const uint64_t base = geo.drop_index(row);
  float4 pv[G], dv[G];
  float dot = 0.0f;
  float2 st = make_float2(0.0f, 0.0f);
  const uint8_t* valid = nullptr;
  if (kFromScores) st = stats[row], valid = key_valid + static_cast<int64_t>(geo.sample(row)) * T;
#pragma unroll
  for (int k = 0; k < G; ++k) {
    const int g = lane_id + 32 * k;
    if (g >= groups) continue;
    pv[k] = load4(probs + row * T + 4 * g);
    if (kFromScores) {  // P = softmax(S) as the forward stored it: exp(s - max) over the valid keys, times 1 / sum
#pragma unroll
      for (int w = 0; w < 4; ++w) lane(pv[k], w) = valid[4 * g + w] ? expf(lane(pv[k], w) - st.x) : 0.0f;
      pv[k].x *= st.y, pv[k].y *= st.y, pv[k].z *= st.y, pv[k].w *= st.y;
      pv[k] = as_stored4<TR>(pv[k]);
    }
    dv[k] = load4(dp + row * T + 4 * g);
    bool keep[4];
    keep_group(keep, key, base + 4 * g, threshold, drop);
    if (pd) {
      const float f = drop ? scale : 1.0f;
      store4(pd + row * T + 4 * g, keep[0] ? pv[k].x * f : 0.0f, keep[1] ? pv[k].y * f : 0.0f,
             keep[2] ? pv[k].z * f : 0.0f, keep[3] ? pv[k].w * f : 0.0f);
    }
#pragma unroll
    for (int w = 0; w < 4; ++w) {
      if (drop) lane(dv[k], w) = keep[w] ? lane(dv[k], w) * scale : 0.0f;
      dot += lane(pv[k], w) * lane(dv[k], w);
    }
  }
  dot = warp_sum(dot);
#pragma unroll
  for (int k = 0; k < G; ++k) {
    const int g = lane_id + 32 * k;
    if (g >= groups) continue;
    store4(ds + row * T + 4 * g, pv[k].x * (dv[k].x - dot), pv[k].y * (dv[k].y - dot), pv[k].z * (dv[k].z - dot),
           pv[k].w * (dv[k].w - dot));
  }
}

// Groups of 4 elements per lane the register kernels need for rows of T (1, 2, 4 or 8), or 0 when T needs the
// generic kernels.
inline int groups_per_lane(int T, std::initializer_list<const void*> rows) {
  for (const void* p : rows)
    if (!aligned16(p)) return 0;
  if (T % 4 != 0 || T / 4 > 32 * kMaxGroups) return 0;
  int G = 1;
  while (32 * G < T / 4) G *= 2;
  return G;
}

// Whether the register kernels take rows of T with these tensors (bf16 scores need them: the generic kernel
// normalises its fp32 scores in place).
inline bool register_rows(int T, std::initializer_list<const void*> rows) { return groups_per_lane(T, rows) > 0; }

inline unsigned warp_row_blocks(int64_t rows) { return static_cast<unsigned>((rows + kWarpRows - 1) / kWarpRows); }

// launch(integral_constant<int, G>, bool_constant<with_stats>) for G in {1, 2, 4, 8}: the register kernels'
// template arguments from their run-time values.
template <class Launch4>
void with_register_kernel(int G, bool with_stats, Launch4&& launch) {
  auto with_g = [&](auto stats_tag) {
    if (G == 1) launch(std::integral_constant<int, 1>{}, stats_tag);
    else if (G == 2) launch(std::integral_constant<int, 2>{}, stats_tag);
    else if (G == 4) launch(std::integral_constant<int, 4>{}, stats_tag);
    else launch(std::integral_constant<int, 8>{}, stats_tag);
  };
  if (with_stats) with_g(std::true_type{});
  else with_g(std::false_type{});
}

// Row-kernel launches: the register kernels where row_launch allows, else the generic ones. scores: S, fp32 (which
// the generic kernel normalises in place) or bf16 (register kernels only); probs: where P is stored (TR), the
// scores buffer itself when both are fp32.
// stats (bf16 scores only, register kernels only): set to keep S as the saved state (probs is then not written).
template <class TSc, class TR, class TP>
void softmax_dropout(const Launch& l, int64_t rows, TSc* scores, TR* probs, TP* pd, float2* stats,
                     const uint8_t* key_valid, RowGeometry geo, PhiloxKey key, uint32_t threshold, float scale,
                     bool drop, bool write_pd) {
  const int G = groups_per_lane(geo.T, {scores, probs, pd});
  const unsigned blocks = warp_row_blocks(rows), threads = 32 * kWarpRows;
  ERL_CHECK(!stats || (G > 0 && std::is_same_v<TR, __nv_bfloat16>),
            "attention: saving the scores needs bf16 probs and the register row kernels");
  if (G > 0) {
    with_register_kernel(G, stats != nullptr, [&](auto g_tag, auto stats_tag) {
      ERL_KERNEL(blocks, threads, 0, stream_of(l),
                 softmax_dropout_rows4<TSc, TR, TP, decltype(g_tag)::value, decltype(stats_tag)::value>)(
          scores, probs, pd, stats, key_valid, rows, geo, key, threshold, scale, drop, write_pd);
    });
  } else if constexpr (std::is_same_v<TSc, float>) {
    ERL_KERNEL(rows, kRowThreads, 0, stream_of(l), softmax_dropout_kernel<TR, TP>)(
        scores, probs, pd, key_valid, geo, key, threshold, scale, drop, write_pd);
  } else {
    ERL_CHECK(false, "attention: bf16 scores need the register row kernels (T % 4 == 0, T <= 1024, aligned rows)");
  }
  ERL_CUDA_LAUNCHED();
}

// pd: nullptr, or where dropout(P) goes as well. dp: the dPd GEMM's result, fp32 or bf16. probs: P as stored, or
// with stats set S and its row statistics (softmax_dropout's stats; key_valid then needed).
template <class TS, class TD, class TR>
void softmax_backward(const Launch& l, int64_t rows, TS* ds, TS* pd, const TD* dp, const TR* probs,
                      const float2* stats, const uint8_t* key_valid, RowGeometry geo, PhiloxKey key,
                      uint32_t threshold, float scale, bool drop) {
  const int G = groups_per_lane(geo.T, {ds, pd, dp, probs});
  const unsigned blocks = warp_row_blocks(rows), threads = 32 * kWarpRows;
  ERL_CHECK(!stats || (G > 0 && std::is_same_v<TR, __nv_bfloat16>),
            "attention: saved scores need bf16 probs and the register row kernels");
  if (G > 0) {
    with_register_kernel(G, stats != nullptr, [&](auto g_tag, auto stats_tag) {
      ERL_KERNEL(blocks, threads, 0, stream_of(l),
                 softmax_backward_rows4<TS, TD, TR, decltype(g_tag)::value, decltype(stats_tag)::value>)(
          ds, pd, dp, probs, stats, key_valid, rows, geo, key, threshold, scale, drop);
    });
  } else {
    ERL_KERNEL(rows, kRowThreads, 0, stream_of(l), softmax_backward_kernel<TS, TD, TR>)(ds, pd, dp, probs, geo, key,
                                                                                         threshold, scale, drop);
  }
  ERL_CUDA_LAUNCHED();
}

}  // namespace erlangshen::cuda::attention_rows
