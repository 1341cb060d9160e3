// What the mma.sync attention kernels (attention_fused_forward.cu, attention_fused_backward.cu) do with the
// elements of an m16n8 accumulator tile (mma.cuh: lane 4 g + t holds columns 2t, 2t+1 of rows g and g+8): row
// reductions over a row's 4 threads, the dropout keep bits of the thread's elements, storing them, the products
// of a warp's 16 rows with a shared-memory tile, and the cp.async loads of a head's rows into shared memory.
#pragma once
#include <cuda_bf16.h>

#include <cstdint>
#include <type_traits>

#include "runtime/cuda/attention_geometry.cuh"
#include "runtime/cuda/mma.cuh"
#include "runtime/philox.h"

namespace erlangshen::cuda::fragments {

// Max / sum over the 4 threads holding one row of a tile (lanes 4 g .. 4 g + 3): every one gets the same bits.
__device__ __forceinline__ float quad_max(float v) {
  v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 1));
  return fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 2));
}
__device__ __forceinline__ float quad_sum(float v) {
  v += __shfl_xor_sync(0xffffffffu, v, 1);
  return v + __shfl_xor_sync(0xffffffffu, v, 2);
}

// Keep bits of this thread's elements of one 8-key tile: bit e for accumulator element e (0, 1: row g columns 2t,
// 2t+1; 2, 3: row g+8). drop_g / drop_g8: the dropout index of (row g, key 0) and (row g+8, key 0); col0: the
// tile's first key; t: lane % 4. Element (i, j)'s keep bit is Philox block (index(i, 0) + j) / 4's word
// (index(i, 0) + j) % 4 (attention_rows.cuh, the CPU backend): a thread holds half of a block of 4 columns in each
// of its two rows, and its neighbour (t ^ 1) the other halves, so the even thread computes row g's block, the odd
// one row g+8's, and they swap the halves the other needs (one shuffle): 4 keep bits per Philox block. Every lane
// of the warp must call it (the shuffle).
__device__ __forceinline__ unsigned keep_bits(const AttentionGeometry& g, uint64_t drop_g, uint64_t drop_g8, int col0,
                                              int t) {
  const bool odd = t & 1;
  const uint64_t index = (odd ? drop_g8 : drop_g) + static_cast<uint64_t>(col0 + 4 * (t / 2));
  const Philox4 r = philox_at(g.key, index >> 2);
  unsigned four = 0;
#pragma unroll
  for (int w = 0; w < 4; ++w) four |= (r.v[w] >= g.threshold ? 1u : 0u) << w;
  const unsigned other = __shfl_xor_sync(0xffffffffu, four, 1);
  // even: own block is row g (its columns: words 0, 1); row g+8 from the odd neighbour's block, words 0, 1.
  // odd: own block is row g+8 (words 2, 3); row g from the even neighbour's block, words 2, 3.
  return odd ? (((other >> 2) & 3u) | (((four >> 2) & 3u) << 2)) : ((four & 3u) | ((other & 3u) << 2));
}

// acc (16 x 8 NT8, mma.cuh's C layout per 8-column tile; only the first n_tiles, even) += A B^T over k = 16 K_STEPS,
// A (the warp's 16 rows x k) and B (8 NT8 rows x k) row-major in shared memory, lda / ldb elements a row: the
// product of two row-major tiles along their rows (Q K^T, dO V^T). K_UNROLL: how many k steps to unroll.
template <int NT8, int K_STEPS, int K_UNROLL>
__device__ __forceinline__ void product_nt_into(float (&acc)[NT8][4], int n_tiles, const __nv_bfloat16* A, int lda,
                                                const __nv_bfloat16* B, int ldb, int lane) {
  const int a_row = (lane % 8) + 8 * ((lane / 8) % 2), a_col = 8 * (lane / 16);
  const int b_row = (lane % 8) + 8 * (lane / 16), b_col = 8 * ((lane / 8) % 2);
#pragma unroll K_UNROLL
  for (int kk = 0; kk < K_STEPS; ++kk) {
    uint32_t a[4];
    mma::ldmatrix_x4(a, A + a_row * lda + kk * 16 + a_col);
#pragma unroll
    for (int n = 0; n < NT8; n += 2) {
      if (n >= n_tiles) break;
      uint32_t kb[4];
      mma::ldmatrix_x4(kb, B + (n * 8 + b_row) * ldb + kk * 16 + b_col);
      const uint32_t b0[2] = {kb[0], kb[1]}, b1[2] = {kb[2], kb[3]};
      mma::mma_bf16_16816(acc[n], a, b0, acc[n]);
      mma::mma_bf16_16816(acc[n + 1], a, b1, acc[n + 1]);
    }
  }
}

// acc (16 x 8 NT8, mma.cuh's C layout per 8-column tile) += A B over `steps` (<= MAX_STEPS) 16-wide k steps:
// a_frag(ks, a) sets a[4] to A's fragment for k step ks (rows: the warp's 16; k: 16 ks .. 16 ks + 15); B (k x 8 NT8)
// is row-major in shared memory, ld elements a row, read with ldmatrix.trans (two 8-column tiles a call).
template <int NT8, int MAX_STEPS, class AFragment>
__device__ __forceinline__ void product_into(float (&acc)[NT8][4], int steps, AFragment a_frag, const __nv_bfloat16* B,
                                             int ld, int lane) {
  const int b_row = (lane % 8) + 8 * ((lane / 8) % 2), b_col = 8 * (lane / 16);
#pragma unroll
  for (int ks = 0; ks < MAX_STEPS; ++ks) {
    if (ks >= steps) break;
    uint32_t a[4];
    a_frag(ks, a);
#pragma unroll
    for (int n = 0; n < NT8; n += 2) {
      uint32_t vb[4];
      mma::ldmatrix_x4_trans(vb, B + (ks * 16 + b_row) * ld + n * 8 + b_col);
      const uint32_t b0[2] = {vb[0], vb[1]}, b1[2] = {vb[2], vb[3]};
      mma::mma_bf16_16816(acc[n], a, b0, acc[n]);
      mma::mma_bf16_16816(acc[n + 1], a, b1, acc[n + 1]);
    }
  }
}

// Rows t0 .. t0 + rows of a (T, HS) bf16 head slice (row t at src + row_offset(t)) into shared memory rows of ld
// elements, with cp.async (16 bytes a copy) spread over the block's `threads` threads; rows past T are zeroed with
// plain stores. The copies complete at the threads' cp_async_wait_all (mma.cuh).
template <int HS, class RowOffset>
__device__ __forceinline__ void cp_async_rows(__nv_bfloat16* dst, int ld, const __nv_bfloat16* src, int t0, int rows,
                                              int T, int threads, RowOffset row_offset) {
  constexpr int kVec = HS / 8;
  for (int v = threadIdx.x; v < rows * kVec; v += threads) {
    const int r = v / kVec, c = (v % kVec) * 8;
    __nv_bfloat16* d = dst + r * ld + c;
    if (t0 + r < T) mma::cp_async_16(d, src + row_offset(t0 + r) + c);
    else *reinterpret_cast<uint4*>(d) = make_uint4(0, 0, 0, 0);
  }
}

// A thread's two adjacent elements of one row (columns 2t, 2t+1) into fp32 or bf16 (rounded once) storage.
template <class TO>
__device__ __forceinline__ void store_pair(TO* p, float a, float b) {
  if constexpr (std::is_same<TO, float>::value) {
    *reinterpret_cast<float2*>(p) = make_float2(a, b);
  } else {
    *reinterpret_cast<uint32_t*>(p) = mma::pack_bf16(a, b);
  }
}

}  // namespace erlangshen::cuda::fragments
