// Fused attention (flash_attention.h) on the tensor cores through nvcuda::wmma, one (sample b, head h) per
// blockIdx.(z, y), tiles of 64 keys (x 128 queries forward, x 64 backward). Notation: S = Q K^T * scale
// (scale = 1/sqrt(HS)), for query row i: m_i = max over valid keys of S_ij, l_i = sum_j exp(S_ij - m_i),
// P_ij = exp(S_ij - m_i) * (1 / l_i) (0 for a padded key; a row without a valid key is all 0),
// Pd = dropout(P) (kept: P / (1 - p)), O = Pd V.
//
// Forward, a block per 128 query rows (8 warps, 16 rows each), two passes over the 64-key tiles:
//   pass 1  S tile = Q K^T (wmma, fp32 accumulators, to shared memory); per row the running max and sum,
//           l <- l * exp(m_old - m_new) + sum_j exp(S_ij - m_new)                                (online softmax)
//   pass 2  S tile again; P, Pd (bf16, shared) exactly as above with the final m and 1/l; O += Pd V (wmma, the
//           accumulators stay in registers for all key tiles: no rescaling, since m and l are final)
//   The row's (m, 1/l) are saved; S and P never leave shared memory.
// Backward (D_i = dO_i . O_i first, one warp per row), two kernels, each recomputing P from Q, K and (m, 1/l):
//   dK/dV kernel, a block per 64 keys (8 warps: 4 row groups of 16 keys x 2 column halves), over the query tiles:
//     S^T = K Q^T, dPd^T = V dO^T (wmma);  P, Pd; dP = dropout'(dPd); dS = P (dP - D_i)  (bf16, shared)
//     dV += Pd^T dO;  dK += dS^T Q      (accumulators in registers; dK scaled by `scale` at the end)
//   dQ kernel, a block per 64 queries (same warp split), over the key tiles:
//     S = Q K^T, dPd = dO V^T;  dS as above;  dQ += dS K  (scaled at the end)
//   Each of dQ, dK, dV is written by one block, once: no atomics, the same bits on every run.
// Dropout element (b, h, i, j) uses the global index ((sample_offset + b) * total_heads + head_offset + h) * T*T
// + i*T + j and the same keep test as attention_rows.cuh, so the masks equal the CPU backend's.
// Shared-memory tiles (bf16 rows of HS + 8, fp32 S rows of 64 + 4, bf16 P rows of 64 + 8: padded against bank
// conflicts, every wmma pointer 32-byte aligned, every ldm a multiple of 16 bytes):
//   forward  Q (128 x HS bf16), K, V (64 x HS), S (128 x 68 fp32), P (128 x 72 bf16)         HS 256: 184 KiB
//   dK/dV    K, V, Q, dO, S^T, dPd^T, Pd^T, dS^T                                               HS 256: 185 KiB
//   dQ       Q, dO, K, V, S, dPd, dS                                                           HS 256: 176 KiB
#include <cuda_bf16.h>
#ifndef ERL_CUDA_EMULATION
#include <mma.h>
#endif

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "runtime/cuda/attention_geometry.cuh"
#include "runtime/cuda/attention_rows.cuh"
#include "runtime/cuda/common.cuh"
#include "runtime/cuda/flash_attention.h"
#include "runtime/cuda/storage.cuh"

namespace erlangshen::cuda {
namespace {

namespace wmma = nvcuda::wmma;
using attention_rows::keep4;
using bf16_t = __nv_bfloat16;

constexpr int kTile = 64;        // query rows and keys per tile
constexpr int kSld = kTile + 4;  // fp32 score tile row stride (floats)
constexpr int kPld = kTile + 8;  // bf16 probability tile row stride (elements)
// Row strides of the HS-wide tiles: bf16 HS + 8 elements, fp32 HS + 4 floats. The 16 extra bytes shift each row to
// other shared-memory banks, so a wmma load of 16 rows does not hit one bank group 16 times (a row of HS = 64..256
// bf16 is a multiple of 128 bytes: unpadded, every row would start on the same bank).
template <int HS>
constexpr int ld_bf16() {
  return HS + 8;
}
template <int HS>
constexpr int ld_f32() {
  return HS + 4;
}
constexpr int kForwardRows = 128;  // query rows per forward block: 8 warps of 16 (K and V tiles are read once per
                                   // 128 query rows, and 8 warps hide latency better than 4)
constexpr int kForwardThreads = 2 * kForwardRows;
constexpr int kBackwardThreads = 256;

using FragA = wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16_t, wmma::row_major>;
using FragBRow = wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16_t, wmma::row_major>;
using FragBCol = wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16_t, wmma::col_major>;
using FragC = wmma::fragment<wmma::accumulator, 16, 16, 16, float>;

using Geometry = AttentionGeometry;

// dst (ROWS x HS bf16, row stride ld_bf16<HS>) <- rows t0.. of a bf16 tensor (row r at src + row_offset(t0 + r)); rows
// past T are zero. 16-byte vectors, all threads of the block.
template <int HS, int ROWS = kTile, class RowOffset>
__device__ void load_tile(bf16_t* dst, const bf16_t* src, int t0, int T, RowOffset row_offset) {
  constexpr int kVec = HS / 8;  // 8 bf16 per uint4
  for (int v = threadIdx.x; v < ROWS * kVec; v += blockDim.x) {
    const int r = v / kVec, c = (v % kVec) * 8;
    uint4 x = make_uint4(0, 0, 0, 0);
    if (t0 + r < T) x = *reinterpret_cast<const uint4*>(src + row_offset(t0 + r) + c);
    *reinterpret_cast<uint4*>(dst + r * ld_bf16<HS>() + c) = x;
  }
}

// acc[n] (16 x 16, n < N) = A rows (16 x K16*16, row-major, ld lda) @ B, where B's n-th 16 columns are rows
// n*16.. of a row-major (cols x K) tile (ld ldb): B = that tile transposed (a col_major wmma load).
template <int N, int K16>
__device__ void mma_abt(FragC (&acc)[N], const bf16_t* a, int lda, const bf16_t* b, int ldb) {
#pragma unroll
  for (int n = 0; n < N; ++n) wmma::fill_fragment(acc[n], 0.0f);
  for (int k = 0; k < K16; ++k) {
    FragA fa;
    wmma::load_matrix_sync(fa, a + k * 16, lda);
#pragma unroll
    for (int n = 0; n < N; ++n) {
      FragBCol fb;
      wmma::load_matrix_sync(fb, b + n * 16 * ldb + k * 16, ldb);
      wmma::mma_sync(acc[n], fa, fb, acc[n]);
    }
  }
}

// acc[n] += A (16 x K16*16 row-major, ld lda) @ B (K16*16 x N*16 row-major, ld ldb).
template <int N, int K16>
__device__ void mma_ab_accumulate(FragC (&acc)[N], const bf16_t* a, int lda, const bf16_t* b, int ldb) {
  for (int k = 0; k < K16; ++k) {
    FragA fa;
    wmma::load_matrix_sync(fa, a + k * 16 * 1, lda);
#pragma unroll
    for (int n = 0; n < N; ++n) {
      FragBRow fb;
      wmma::load_matrix_sync(fb, b + k * 16 * ldb + n * 16, ldb);
      wmma::mma_sync(acc[n], fa, fb, acc[n]);
    }
  }
}

template <int N>
__device__ void store_acc(float* dst, int ld, FragC (&acc)[N]) {
#pragma unroll
  for (int n = 0; n < N; ++n) wmma::store_matrix_sync(dst + n * 16, acc[n], ld, wmma::mem_row_major);
}

// Pd and dS of one group of 4 keys j..j+3 (j % 4 == 0) of query row i, from the scores s[4] (already scaled), the
// row's (m, inv) and D, and the dropped-probability gradients dpd[4] (null in the forward).
struct RowStats {
  float m, inv, d;
};
__device__ void probabilities4(float p[4], bool keep[4], const float s[4], const bool valid[4], const RowStats& st,
                               const Geometry& g, uint64_t drop_index, int count) {
#pragma unroll
  for (int w = 0; w < 4; ++w) p[w] = valid[w] && st.inv > 0.0f ? expf(s[w] - st.m) * st.inv : 0.0f;
#pragma unroll
  for (int w = 0; w < 4; ++w) keep[w] = true;
  if (g.drop) keep4(keep, g.key, drop_index, g.threshold, count);
}

// ---- forward ----

template <int HS, class TO>
__global__ void __launch_bounds__(kForwardThreads)
    flash_forward_kernel(TO* out, float* stats, const bf16_t* qkv, const uint8_t* key_valid, Geometry g) {
  ERL_DYNAMIC_SHARED(smem);
  constexpr int LD = ld_bf16<HS>(), LDO = ld_f32<HS>();
  bf16_t* Qs = reinterpret_cast<bf16_t*>(smem);
  bf16_t* Ks = Qs + kForwardRows * LD;
  bf16_t* Vs = Ks + kTile * LD;
  float* Ss = reinterpret_cast<float*>(Vs + kTile * LD);
  bf16_t* Ps = reinterpret_cast<bf16_t*>(Ss + kForwardRows * kSld);
  const int i0 = blockIdx.x * kForwardRows, h = blockIdx.y, b = blockIdx.z, T = g.T;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int r = warp * 16 + lane / 2, half = lane & 1;  // this lane's row of the tile and half of the 64 keys
  const uint8_t* valid = key_valid + static_cast<int64_t>(b) * T;
  load_tile<HS, kForwardRows>(Qs, qkv, i0, T, [&](int t) { return g.qkv_row(b, t, 0, h); });
  float m = -INFINITY, l = 0.0f;
  FragC o[HS / 16];
#pragma unroll
  for (int n = 0; n < HS / 16; ++n) wmma::fill_fragment(o[n], 0.0f);
  for (int pass = 0; pass < 2; ++pass) {
    const float inv = l > 0.0f ? 1.0f / l : 0.0f;
    for (int j0 = 0; j0 < T; j0 += kTile) {
      __syncthreads();  // the previous tile's K, V and P are no longer read
      load_tile<HS>(Ks, qkv, j0, T, [&](int t) { return g.qkv_row(b, t, 1, h); });
      if (pass == 1) load_tile<HS>(Vs, qkv, j0, T, [&](int t) { return g.qkv_row(b, t, 2, h); });
      __syncthreads();
      FragC s[kTile / 16];
      mma_abt<kTile / 16, HS / 16>(s, Qs + warp * 16 * LD, LD, Ks, LD);
      store_acc(Ss + warp * 16 * kSld, kSld, s);
      __syncwarp();
      const float* srow = Ss + r * kSld;
      if (pass == 0) {
        float mx = -INFINITY;
        for (int c = half * 32; c < half * 32 + 32; ++c)
          if (j0 + c < T && valid[j0 + c]) mx = fmaxf(mx, srow[c] * g.scale);
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        const float m_new = fmaxf(m, mx);
        float sum = 0.0f;
        if (m_new != -INFINITY)
          for (int c = half * 32; c < half * 32 + 32; ++c)
            if (j0 + c < T && valid[j0 + c]) sum += expf(srow[c] * g.scale - m_new);
        sum += __shfl_xor_sync(0xffffffffu, sum, 1);
        l = (m == -INFINITY ? 0.0f : l * expf(m - m_new)) + sum;
        m = m_new;
        continue;
      }
      const RowStats st{m, inv, 0.0f};
      const uint64_t drop_index = g.drop_row(b, h, i0 + r) + j0;
      for (int c = half * 32; c < half * 32 + 32; c += 4) {
        float sc[4], p[4];
        bool ok[4], keep[4];
#pragma unroll
        for (int w = 0; w < 4; ++w) {
          sc[w] = srow[c + w] * g.scale;
          ok[w] = j0 + c + w < T && valid[j0 + c + w];
        }
        probabilities4(p, keep, sc, ok, st, g, drop_index + c, min(4, T - j0 - c));
#pragma unroll
        for (int w = 0; w < 4; ++w)
          Ps[r * kPld + c + w] = __float2bfloat16_rn(g.drop ? (keep[w] ? p[w] * g.keep_scale : 0.0f) : p[w]);
      }
      __syncwarp();
      mma_ab_accumulate<HS / 16, kTile / 16>(o, Ps + warp * 16 * kPld, kPld, Vs, LD);
    }
  }
  __syncthreads();  // Q, K and V are done: their space holds the fp32 output rows
  float* Os = reinterpret_cast<float*>(smem) + warp * 16 * LDO;
  store_acc(Os, LDO, o);
  __syncwarp();
  for (int e = lane; e < 16 * HS; e += 32) {
    const int rr = e / HS, d = e % HS, i = i0 + warp * 16 + rr;
    if (i < T) out[g.o_row(b, i, h) + d] = from_f32<TO>(Os[rr * LDO + d]);
  }
  if (half == 0 && i0 + r < T) {
    const int64_t q = g.stat_row(b, h, i0 + r);
    stats[2 * q] = m;
    stats[2 * q + 1] = l > 0.0f ? 1.0f / l : 0.0f;
  }
}

// ---- backward ----

// D (B NH T) = rowsum(dO * O) per (sample, head, query), one warp per row.
template <class TD, class TO>
__global__ void flash_rowdot_kernel(float* D, const TD* dout, const TO* out, Geometry g, int B) {
  const int64_t row = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;  // (b, h, i)
  const int lane = threadIdx.x % 32;
  if (row >= static_cast<int64_t>(B) * g.NH * g.T) return;
  const int i = static_cast<int>(row % g.T), h = static_cast<int>(row / g.T % g.NH),
            b = static_cast<int>(row / (static_cast<int64_t>(g.T) * g.NH));
  const int64_t base = g.o_row(b, i, h);
  float s = 0.0f;
  for (int d = lane; d < g.HS; d += 32) s += to_f32(dout[base + d]) * to_f32(out[base + d]);
  s = warp_sum(s);
  if (lane == 0) D[row] = s;
}

// Pd and dS of a tile pair from the fp32 score and dPd tiles, for the rows / columns given by the accessors:
// element (query qi, key kj) of the 64 x 64 tile is at S[at(qi, kj)] (transposed in the dK/dV kernel).
template <class At>
__device__ void tile_gradients(bf16_t* Pd, bf16_t* dS, const float* S, const float* dPd, At at, int p_ld,
                               bool transposed, int b, int h, int i0, int j0, const float* m_s, const float* inv_s,
                               const float* D_s, const uint8_t* valid, const Geometry& g) {
  const int T = g.T;
  for (int grp = threadIdx.x; grp < kTile * kTile / 4; grp += blockDim.x) {
    const int qi = grp / (kTile / 4), kj = (grp % (kTile / 4)) * 4;
    const RowStats st{m_s[qi], inv_s[qi], D_s[qi]};
    float sc[4], p[4];
    bool ok[4], keep[4];
#pragma unroll
    for (int w = 0; w < 4; ++w) {
      sc[w] = S[at(qi, kj + w)] * g.scale;
      ok[w] = j0 + kj + w < T && valid[j0 + kj + w];
    }
    probabilities4(p, keep, sc, ok, st, g, g.drop_row(b, h, i0 + qi) + j0 + kj, min(4, T - j0 - kj));
#pragma unroll
    for (int w = 0; w < 4; ++w) {
      const float pd = g.drop ? (keep[w] ? p[w] * g.keep_scale : 0.0f) : p[w];
      const float dpd = dPd[at(qi, kj + w)];
      const float dp = g.drop ? (keep[w] ? dpd * g.keep_scale : 0.0f) : dpd;
      const int o = transposed ? (kj + w) * p_ld + qi : qi * p_ld + kj + w;
      if (Pd) Pd[o] = __float2bfloat16_rn(pd);
      dS[o] = __float2bfloat16_rn(p[w] * (dp - st.d));
    }
  }
}

// Row statistics of query rows i0.. into shared memory (rows past T: inv 0, so P = 0 there).
__device__ void load_row_stats(float* m_s, float* inv_s, float* D_s, const float* stats, const float* D, int b, int h,
                               int i0, const Geometry& g) {
  for (int r = threadIdx.x; r < kTile; r += blockDim.x) {
    const int i = i0 + r;
    const bool in = i < g.T;
    const int64_t q = in ? g.stat_row(b, h, i) : 0;
    m_s[r] = in ? stats[2 * q] : 0.0f;
    inv_s[r] = in ? stats[2 * q + 1] : 0.0f;
    D_s[r] = in ? D[q] : 0.0f;
  }
}

// Writes a 64 x HS fp32 tile (row stride ld_f32<HS>) times `mul` into rows t0.. of slot `which` of dqkv.
template <int HS, class TG>
__device__ void write_rows(TG* dqkv, const float* tile, float mul, int t0, int which, int b, int h, const Geometry& g) {
  for (int e = threadIdx.x; e < kTile * HS; e += blockDim.x) {
    const int r = e / HS, d = e % HS;
    if (t0 + r < g.T) dqkv[g.qkv_row(b, t0 + r, which, h) + d] = from_f32<TG>(tile[r * ld_f32<HS>() + d] * mul);
  }
}

template <int HS, class TG>
__global__ void __launch_bounds__(kBackwardThreads)
    flash_dkdv_kernel(TG* dqkv, const bf16_t* qkv, const bf16_t* dout, const float* stats, const float* D,
                      const uint8_t* key_valid, Geometry g) {
  ERL_DYNAMIC_SHARED(smem);
  constexpr int LD = ld_bf16<HS>(), LDO = ld_f32<HS>();
  bf16_t* Ks = reinterpret_cast<bf16_t*>(smem);
  bf16_t* Vs = Ks + kTile * LD;
  bf16_t* Qs = Vs + kTile * LD;
  bf16_t* dOs = Qs + kTile * LD;
  float* St = reinterpret_cast<float*>(dOs + kTile * LD);  // [key][query]
  float* dPt = St + kTile * kSld;
  bf16_t* Pdt = reinterpret_cast<bf16_t*>(dPt + kTile * kSld);
  bf16_t* dSt = Pdt + kTile * kPld;
  float* m_s = reinterpret_cast<float*>(dSt + kTile * kPld);
  float* inv_s = m_s + kTile;
  float* D_s = inv_s + kTile;
  const int j0 = blockIdx.x * kTile, h = blockIdx.y, b = blockIdx.z, T = g.T;
  const int warp = threadIdx.x / 32, rows = (warp % 4) * 16, half = warp / 4;
  const uint8_t* valid = key_valid + static_cast<int64_t>(b) * T;
  load_tile<HS>(Ks, qkv, j0, T, [&](int t) { return g.qkv_row(b, t, 1, h); });
  load_tile<HS>(Vs, qkv, j0, T, [&](int t) { return g.qkv_row(b, t, 2, h); });
  FragC dk[HS / 32], dv[HS / 32];
#pragma unroll
  for (int n = 0; n < HS / 32; ++n) wmma::fill_fragment(dk[n], 0.0f), wmma::fill_fragment(dv[n], 0.0f);
  for (int i0 = 0; i0 < T; i0 += kTile) {
    __syncthreads();  // the previous query tile is no longer read
    load_tile<HS>(Qs, qkv, i0, T, [&](int t) { return g.qkv_row(b, t, 0, h); });
    load_tile<HS>(dOs, dout, i0, T, [&](int t) { return g.o_row(b, t, h); });
    load_row_stats(m_s, inv_s, D_s, stats, D, b, h, i0, g);
    __syncthreads();
    {  // S^T and dPd^T, 16 keys x 32 queries per warp
      FragC acc[2];
      mma_abt<2, HS / 16>(acc, Ks + rows * LD, LD, Qs + half * 32 * LD, LD);
      store_acc(St + rows * kSld + half * 32, kSld, acc);
      mma_abt<2, HS / 16>(acc, Vs + rows * LD, LD, dOs + half * 32 * LD, LD);
      store_acc(dPt + rows * kSld + half * 32, kSld, acc);
    }
    __syncthreads();
    tile_gradients(
        Pdt, dSt, St, dPt, [](int qi, int kj) { return kj * kSld + qi; }, kPld, true, b, h, i0, j0, m_s, inv_s, D_s,
        valid, g);
    __syncthreads();
    mma_ab_accumulate<HS / 32, kTile / 16>(dv, Pdt + rows * kPld, kPld, dOs + half * (HS / 2), LD);
    mma_ab_accumulate<HS / 32, kTile / 16>(dk, dSt + rows * kPld, kPld, Qs + half * (HS / 2), LD);
  }
  // Q, dO (2 x 64 x HS bf16) hold one 64 x HS fp32 tile: dV first, then dK.
  float* tile = reinterpret_cast<float*>(Qs);
  __syncthreads();
  store_acc(tile + rows * LDO + half * (HS / 2), LDO, dv);
  __syncthreads();
  write_rows<HS>(dqkv, tile, 1.0f, j0, 2, b, h, g);
  __syncthreads();
  store_acc(tile + rows * LDO + half * (HS / 2), LDO, dk);
  __syncthreads();
  write_rows<HS>(dqkv, tile, g.scale, j0, 1, b, h, g);
}

template <int HS, class TG>
__global__ void __launch_bounds__(kBackwardThreads)
    flash_dq_kernel(TG* dqkv, const bf16_t* qkv, const bf16_t* dout, const float* stats, const float* D,
                    const uint8_t* key_valid, Geometry g) {
  ERL_DYNAMIC_SHARED(smem);
  constexpr int LD = ld_bf16<HS>(), LDO = ld_f32<HS>();
  bf16_t* Qs = reinterpret_cast<bf16_t*>(smem);
  bf16_t* dOs = Qs + kTile * LD;
  bf16_t* Ks = dOs + kTile * LD;
  bf16_t* Vs = Ks + kTile * LD;
  float* Ss = reinterpret_cast<float*>(Vs + kTile * LD);  // [query][key]
  float* dPs = Ss + kTile * kSld;
  bf16_t* dSs = reinterpret_cast<bf16_t*>(dPs + kTile * kSld);
  float* m_s = reinterpret_cast<float*>(dSs + kTile * kPld);
  float* inv_s = m_s + kTile;
  float* D_s = inv_s + kTile;
  const int i0 = blockIdx.x * kTile, h = blockIdx.y, b = blockIdx.z, T = g.T;
  const int warp = threadIdx.x / 32, rows = (warp % 4) * 16, half = warp / 4;
  const uint8_t* valid = key_valid + static_cast<int64_t>(b) * T;
  load_tile<HS>(Qs, qkv, i0, T, [&](int t) { return g.qkv_row(b, t, 0, h); });
  load_tile<HS>(dOs, dout, i0, T, [&](int t) { return g.o_row(b, t, h); });
  load_row_stats(m_s, inv_s, D_s, stats, D, b, h, i0, g);
  FragC dq[HS / 32];
#pragma unroll
  for (int n = 0; n < HS / 32; ++n) wmma::fill_fragment(dq[n], 0.0f);
  for (int j0 = 0; j0 < T; j0 += kTile) {
    __syncthreads();  // the previous key tile is no longer read
    load_tile<HS>(Ks, qkv, j0, T, [&](int t) { return g.qkv_row(b, t, 1, h); });
    load_tile<HS>(Vs, qkv, j0, T, [&](int t) { return g.qkv_row(b, t, 2, h); });
    __syncthreads();
    {  // S and dPd, 16 queries x 32 keys per warp
      FragC acc[2];
      mma_abt<2, HS / 16>(acc, Qs + rows * LD, LD, Ks + half * 32 * LD, LD);
      store_acc(Ss + rows * kSld + half * 32, kSld, acc);
      mma_abt<2, HS / 16>(acc, dOs + rows * LD, LD, Vs + half * 32 * LD, LD);
      store_acc(dPs + rows * kSld + half * 32, kSld, acc);
    }
    __syncthreads();
    tile_gradients(
        static_cast<bf16_t*>(nullptr), dSs, Ss, dPs, [](int qi, int kj) { return qi * kSld + kj; }, kPld, false, b, h,
        i0, j0, m_s, inv_s, D_s, valid, g);
    __syncthreads();
    mma_ab_accumulate<HS / 32, kTile / 16>(dq, dSs + rows * kPld, kPld, Ks + half * (HS / 2), LD);
  }
  float* tile = reinterpret_cast<float*>(Ks);  // K, V (2 x 64 x HS bf16) hold the 64 x HS fp32 dQ tile
  __syncthreads();
  store_acc(tile + rows * LDO + half * (HS / 2), LDO, dq);
  __syncthreads();
  write_rows<HS>(dqkv, tile, g.scale, i0, 0, b, h, g);
}

// ---- host side ----

// Bytes of dynamic shared memory (tile rows at the padded stride HS + 8).
size_t forward_smem(int HS) {
  return (size_t(kForwardRows) + 2 * kTile) * (HS + 8) * 2 + size_t(kForwardRows) * (kSld * 4 + kPld * 2);
}
size_t dkdv_smem(int HS) {
  return 4 * size_t(kTile) * (HS + 8) * 2 + 2 * size_t(kTile) * kSld * 4 + 2 * size_t(kTile) * kPld * 2 + 3 * kTile * 4;
}
size_t dq_smem(int HS) {
  return 4 * size_t(kTile) * (HS + 8) * 2 + 2 * size_t(kTile) * kSld * 4 + size_t(kTile) * kPld * 2 + 3 * kTile * 4;
}

template <class TO, int HS>
void launch_forward(const Launch& l, TO* out, float* stats, const bf16_t* qkv, const uint8_t* key_valid,
                    const AttentionShape& s, const Geometry& g) {
  const size_t smem = forward_smem(HS);
  allow_smem(flash_forward_kernel<HS, TO>, smem);
  const dim3 grid((s.Tn + kForwardRows - 1) / kForwardRows, s.NH, s.B);
  ERL_KERNEL(grid, kForwardThreads, smem, stream_of(l), flash_forward_kernel<HS, TO>)(out, stats, qkv, key_valid, g);
  ERL_CUDA_LAUNCHED();
}

template <class TG, int HS>
void launch_backward(const Launch& l, TG* dqkv, const bf16_t* qkv, const bf16_t* dout, const float* stats,
                     const float* D, const uint8_t* key_valid, const AttentionShape& s, const Geometry& g) {
  const dim3 grid((s.Tn + kTile - 1) / kTile, s.NH, s.B);
  allow_smem(flash_dkdv_kernel<HS, TG>, dkdv_smem(HS));
  ERL_KERNEL(grid, kBackwardThreads, dkdv_smem(HS), stream_of(l), flash_dkdv_kernel<HS, TG>)
  (dqkv, qkv, dout, stats, D, key_valid, g);
  ERL_CUDA_LAUNCHED();
  allow_smem(flash_dq_kernel<HS, TG>, dq_smem(HS));
  ERL_KERNEL(grid, kBackwardThreads, dq_smem(HS), stream_of(l), flash_dq_kernel<HS, TG>)
  (dqkv, qkv, dout, stats, D, key_valid, g);
  ERL_CUDA_LAUNCHED();
}

// Scratch carve-up (floats): [qkv16: 1.5 N C][dout16: 0.5 N C][D: B NH T], each slot 64-float aligned.
struct Slots {
  int64_t nc, qkv16, dout16, D, end;
  explicit Slots(const AttentionShape& s) {
    nc = static_cast<int64_t>(s.B) * s.Tn * s.NH * s.HS;
    auto up = [](int64_t f) { return (f + 63) / 64 * 64; };
    qkv16 = 0;
    dout16 = up(3 * nc / 2 + 1);
    D = dout16 + up(nc / 2 + 1);
    end = D + up(static_cast<int64_t>(s.B) * s.NH * s.Tn);
  }
};

void check_call(const Launch& l, const char* op, const AttentionShape& s) {
  ERL_CHECK(flash_attention_supported(l, s), "cuda::" << op << ": shape B " << s.B << " T " << s.Tn << " NH " << s.NH
                                                      << " HS " << s.HS
                                                      << " not supported here (flash_attention_supported)");
}

}  // namespace

bool flash_attention_supported(const Launch& l, const AttentionShape& s) {
  if (s.HS != 64 && s.HS != 128 && s.HS != 256) return false;
  if (l.context == nullptr || l.context->math() != MathMode::BF16) return false;
  return static_cast<int64_t>(std::max({forward_smem(s.HS), dkdv_smem(s.HS), dq_smem(s.HS)})) <= device_smem_optin();
}

int64_t flash_attention_scratch_elems(const AttentionShape& s) { return Slots(s).end; }

void flash_attention_forward(Launch l, Act<float> out, float* stats, float* scratch, Act<const float> qkv,
                             const uint8_t* key_valid, const AttentionShape& s, const DropoutSpec& dropout) {
  check_call(l, "flash_attention_forward", s);
  const Slots slots(s);
  const bf16_t* q16 = bf16_operand(l, qkv, reinterpret_cast<uint16_t*>(scratch + slots.qkv16), 3 * slots.nc);
  const Geometry g = attention_geometry(s, dropout);
  with_head_size(s.HS, "flash_attention", [&](auto hs) {
    constexpr int HS = decltype(hs)::value;
    if (out.is_bf16())
      launch_forward<bf16_t, HS>(l, device_bf16(out.h), stats, q16, key_valid, s, g);
    else
      launch_forward<float, HS>(l, out.f, stats, q16, key_valid, s, g);
  });
}

void flash_attention_backward(Launch l, Act<float> dqkv, float* scratch, Act<const float> dout, Act<const float> out,
                              Act<const float> qkv, const float* stats, const uint8_t* key_valid,
                              const AttentionShape& s, const DropoutSpec& dropout) {
  check_call(l, "flash_attention_backward", s);
  const Slots slots(s);
  const bf16_t* q16 = bf16_operand(l, qkv, reinterpret_cast<uint16_t*>(scratch + slots.qkv16), 3 * slots.nc);
  const bf16_t* d16 = bf16_operand(l, dout, reinterpret_cast<uint16_t*>(scratch + slots.dout16), slots.nc);
  float* D = scratch + slots.D;
  const Geometry g = attention_geometry(s, dropout);
  const int64_t rows = static_cast<int64_t>(s.B) * s.NH * s.Tn;
  const unsigned blocks = static_cast<unsigned>((rows * 32 + 255) / 256);
  // D from dout and out as stored (the bf16 dout operand holds the same values as a bf16 dout).
  visit(out, [&](auto* o) { ERL_KERNEL(blocks, 256, 0, stream_of(l), flash_rowdot_kernel)(D, d16, o, g, s.B); });
  ERL_CUDA_LAUNCHED();
  with_head_size(s.HS, "flash_attention", [&](auto hs) {
    constexpr int HS = decltype(hs)::value;
    if (dqkv.is_bf16())
      launch_backward<bf16_t, HS>(l, device_bf16(dqkv.h), q16, d16, stats, D, key_valid, s, g);
    else
      launch_backward<float, HS>(l, dqkv.f, q16, d16, stats, D, key_valid, s, g);
  });
}

}  // namespace erlangshen::cuda
