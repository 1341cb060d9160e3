// The fused attention backward for T <= 128 (attention_fused_backward.h) on mma.sync tiles (mma.cuh): one block per
// (head h, sample b) with T / 16 warps, Q, K, V and dO of the head (T x HS each, bf16) in shared memory. Notation as
// in attention.cu: S the saved bf16 logits, P_ij = bf16(exp(S_ij - m_i) * (1 / l_i)) over the valid keys (0 for a
// padded key), exactly as the unfused backward recomputes it; keep_ij the dropout keep bit, k = 1 / (1 - p).
//
// Phase 1, warp w owning query rows i in [16 w, 16 w + 16), all T keys in registers (T / 8 accumulator tiles):
//   dPd = dO_i V^T                        (16 x T, fp32)
//   dP = keep * k * dPd;  D_i = sum_j P_ij dP_ij   (over the row's 4 threads: the whole row is in the warp)
//   dS = P * (dP - D_i)  -> bf16, to shared memory (T x T) and, as it lies, the A operand of
//   dQ_i = scale * dS_i K                 (16 x HS)  -> dqkv
//   Pd = keep * k * P  -> bf16, to shared memory (T x T)
// Phase 2 (after a barrier), warp w owning key rows j in [16 w, 16 w + 16):
//   dK_j = scale * dS^T_j Q;   dV_j = Pd^T_j dO     (16 x HS each, the A operands ldmatrix.trans from shared memory)
// The unfused backward computes the same products from the same bf16 dS and Pd, except that it rounds dPd to bf16
// before the row pass (its GEMM's output) where this keeps it fp32, and sums D_i in another order.
// T x T traffic: the saved S read once (2 bytes an element) instead of the unfused path's 16 (dPd written and read,
// S read, dS and Pd written, Pd read once and dS twice by the GEMMs); 4 NH GEMM launches and a row pass -> one.
// Shared memory (bf16 rows padded by 16 bytes: the 8 rows of an ldmatrix in different banks): Q, K, V, dO
// 4 T (HS + 8) and dS, Pd 2 T (T + 8): 140 / 204 KiB at T 128 and head dim 64 / 128, 153 KiB at T 64, head dim 256.
#include "runtime/cuda/attention_fused_backward.h"

#include <cuda_bf16.h>

#include <cmath>

#include "runtime/cuda/attention_fragments.cuh"
#include "runtime/cuda/attention_geometry.cuh"
#include "runtime/cuda/common.cuh"
#include "runtime/cuda/mma.cuh"
#include "runtime/cuda/storage.cuh"

namespace erlangshen::cuda {
namespace {

using bf16_t = __nv_bfloat16;
using namespace fragments;  // NOLINT: the accumulator-fragment helpers (attention_fragments.cuh)
using Geometry = AttentionGeometry;

constexpr int kMaxT = 128;
constexpr int kMaxKeyTiles8 = kMaxT / 8;    // 8-key accumulator tiles of a query row block
constexpr int kMaxKeySteps = kMaxT / 16;    // 16-wide k steps over the keys (or the query rows)

size_t smem_bytes(int T, int HS) {
  return (4 * static_cast<size_t>(T) * (HS + 8) + 2 * static_cast<size_t>(T) * (T + 8)) * sizeof(uint16_t);
}

// The bf16 in the low (which 0) or high half of a 32-bit word, as a float.
__device__ __forceinline__ float bf16_half(uint32_t w, int which) {
  return __uint_as_float(which == 0 ? w << 16 : w & 0xffff0000u);
}
__device__ __forceinline__ float round_bf16(float x) { return __bfloat162float(__float2bfloat16_rn(x)); }

// Rows r0 + g and r0 + g + 8 of acc * mul into slot `which` of head h of dqkv (this thread's columns 2t, 2t+1).
template <int HS, class TO>
__device__ __forceinline__ void store_rows(TO* dqkv, const Geometry& g, int b, int h, int which, int r0,
                                           const float (&acc)[HS / 8][4], float mul, int lane) {
  const int gq = lane / 4, tq = lane % 4;
  TO* top = dqkv + g.qkv_row(b, r0 + gq, which, h) + 2 * tq;
  TO* bottom = dqkv + g.qkv_row(b, r0 + gq + 8, which, h) + 2 * tq;
#pragma unroll
  for (int n = 0; n < HS / 8; ++n) {
    store_pair(top + 8 * n, acc[n][0] * mul, acc[n][1] * mul);
    store_pair(bottom + 8 * n, acc[n][2] * mul, acc[n][3] * mul);
  }
}

template <int HS, class TO>
__global__ void __launch_bounds__(32 * kMaxKeySteps) fused_backward_kernel(TO* dqkv, const uint16_t* scores,
                                                                         const float2* stats, const bf16_t* qkv,
                                                                         const bf16_t* dout, const uint8_t* key_valid,
                                                                         Geometry g) {
  ERL_DYNAMIC_SHARED(smem);
  constexpr int ld = HS + 8;
  const int T = g.T, ldt = T + 8, steps = T / 16, key_tiles = T / 8;
  bf16_t* sQ = reinterpret_cast<bf16_t*>(smem);  // (T, HS) each
  bf16_t* sK = sQ + T * ld;
  bf16_t* sV = sK + T * ld;
  bf16_t* sdO = sV + T * ld;
  bf16_t* sdS = sdO + T * ld;  // (T query rows, T keys) each
  bf16_t* sPd = sdS + T * ldt;
  const int h = blockIdx.x, b = blockIdx.y;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, gq = lane / 4, tq = lane % 4;
  // ldmatrix row addresses of this lane for an A fragment of a row-major (k x m) tile with .trans (mma.cuh; the
  // pattern of B fragments of a row-major (n x k) tile without it): dS^T and Pd^T in phase 2.
  const int rows_b = (lane % 8) + 8 * (lane / 16), cols_b = 8 * ((lane / 8) % 2);

  const int threads = blockDim.x;
  cp_async_rows<HS>(sQ, ld, qkv, 0, T, T, threads, [&](int t) { return g.qkv_row(b, t, 0, h); });
  cp_async_rows<HS>(sK, ld, qkv, 0, T, T, threads, [&](int t) { return g.qkv_row(b, t, 1, h); });
  cp_async_rows<HS>(sV, ld, qkv, 0, T, T, threads, [&](int t) { return g.qkv_row(b, t, 2, h); });
  cp_async_rows<HS>(sdO, ld, dout, 0, T, T, threads, [&](int t) { return g.o_row(b, t, h); });
  mma::cp_async_commit();

  // ---- phase 1: query rows i0 + g, i0 + g + 8 ----
  const int i0 = 16 * warp, row_g = i0 + gq, row_g8 = row_g + 8;
  const float2 st_g = stats[g.stat_row(b, h, row_g)], st_g8 = stats[g.stat_row(b, h, row_g8)];
  const uint32_t* s_g = reinterpret_cast<const uint32_t*>(scores + g.stat_row(b, h, row_g) * T);
  const uint32_t* s_g8 = reinterpret_cast<const uint32_t*>(scores + g.stat_row(b, h, row_g8) * T);
  const uint8_t* valid = key_valid + static_cast<int64_t>(b) * T;
  const uint64_t drop_g = g.drop_row(b, h, row_g), drop_g8 = g.drop_row(b, h, row_g8);
  mma::cp_async_wait_all();
  __syncthreads();  // Q, K, V, dO in

  float dp[kMaxKeyTiles8][4];  // dPd, then dP: 8-key tile n, elements as mma.cuh's C
#pragma unroll
  for (int n = 0; n < kMaxKeyTiles8; ++n) dp[n][0] = dp[n][1] = dp[n][2] = dp[n][3] = 0.0f;
  product_nt_into<kMaxKeyTiles8, HS / 16, 2>(dp, key_tiles, sdO + i0 * ld, ld, sV, ld, lane);

  // P from the saved state; dP; Pd to shared memory; the row sums D.
  float p[kMaxKeyTiles8][4];
  float dot[2] = {0.0f, 0.0f};
#pragma unroll
  for (int n = 0; n < kMaxKeyTiles8; ++n) {
    if (n >= key_tiles) break;
    const int j = 8 * n + 2 * tq;
    const uint32_t pair_g = s_g[j / 2], pair_g8 = s_g8[j / 2];
    const unsigned keep = g.drop ? keep_bits(g, drop_g, drop_g8, 8 * n, tq) : 0xfu;
    float pd[4];
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const float2 st = e < 2 ? st_g : st_g8;
      const float logit = bf16_half(e < 2 ? pair_g : pair_g8, e & 1);
      const float pe = valid[j + (e & 1)] ? round_bf16(expf(logit - st.x) * st.y) : 0.0f;
      const bool kept = (keep >> e) & 1u;
      const float dpe = g.drop ? (kept ? dp[n][e] * g.keep_scale : 0.0f) : dp[n][e];
      p[n][e] = pe;
      dp[n][e] = dpe;
      pd[e] = g.drop ? (kept ? pe * g.keep_scale : 0.0f) : pe;
      dot[e / 2] += pe * dpe;
    }
    *reinterpret_cast<uint32_t*>(sPd + row_g * ldt + j) = mma::pack_bf16(pd[0], pd[1]);
    *reinterpret_cast<uint32_t*>(sPd + row_g8 * ldt + j) = mma::pack_bf16(pd[2], pd[3]);
  }
  dot[0] = quad_sum(dot[0]);
  dot[1] = quad_sum(dot[1]);

  // dS in bf16: to shared memory, and as the A fragments of dQ = dS K (two 8-key tiles a 16-wide k step).
  uint32_t ds[kMaxKeySteps][4];
#pragma unroll
  for (int n = 0; n < kMaxKeyTiles8; ++n) {
    if (n >= key_tiles) break;
    const int j = 8 * n + 2 * tq;
    const uint32_t top = mma::pack_bf16(p[n][0] * (dp[n][0] - dot[0]), p[n][1] * (dp[n][1] - dot[0]));
    const uint32_t bottom = mma::pack_bf16(p[n][2] * (dp[n][2] - dot[1]), p[n][3] * (dp[n][3] - dot[1]));
    *reinterpret_cast<uint32_t*>(sdS + row_g * ldt + j) = top;
    *reinterpret_cast<uint32_t*>(sdS + row_g8 * ldt + j) = bottom;
    ds[n / 2][2 * (n % 2)] = top;
    ds[n / 2][2 * (n % 2) + 1] = bottom;
  }
  {
    float dq[HS / 8][4];
#pragma unroll
    for (int n = 0; n < HS / 8; ++n) dq[n][0] = dq[n][1] = dq[n][2] = dq[n][3] = 0.0f;
    product_into<HS / 8, kMaxKeySteps>(
        dq, steps,
        [&](int ks, uint32_t(&a)[4]) {
#pragma unroll
          for (int r = 0; r < 4; ++r) a[r] = ds[ks][r];
        },
        sK, ld, lane);
    store_rows<HS>(dqkv, g, b, h, 0, i0, dq, g.scale, lane);
  }
  __syncthreads();  // dS and Pd complete

  // ---- phase 2: key rows j0 + g, j0 + g + 8: dK = scale * dS^T Q, dV = Pd^T dO ----
  const int j0 = 16 * warp;
  float acc[HS / 8][4];
#pragma unroll
  for (int n = 0; n < HS / 8; ++n) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.0f;
  product_into<HS / 8, kMaxKeySteps>(
      acc, steps, [&](int ks, uint32_t(&a)[4]) { mma::ldmatrix_x4_trans(a, sdS + (ks * 16 + rows_b) * ldt + j0 + cols_b); },
      sQ, ld, lane);
  store_rows<HS>(dqkv, g, b, h, 1, j0, acc, g.scale, lane);
#pragma unroll
  for (int n = 0; n < HS / 8; ++n) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.0f;
  product_into<HS / 8, kMaxKeySteps>(
      acc, steps, [&](int ks, uint32_t(&a)[4]) { mma::ldmatrix_x4_trans(a, sPd + (ks * 16 + rows_b) * ldt + j0 + cols_b); },
      sdO, ld, lane);
  store_rows<HS>(dqkv, g, b, h, 2, j0, acc, 1.0f, lane);
}

template <int HS, class TO>
void launch(const Launch& l, TO* dqkv, const uint16_t* scores, const float2* stats, const bf16_t* qkv,
            const bf16_t* dout, const uint8_t* key_valid, const AttentionShape& s, const Geometry& g) {
  const size_t smem = smem_bytes(s.Tn, HS);
  allow_smem(fused_backward_kernel<HS, TO>, smem);
  const dim3 grid(s.NH, s.B);
  ERL_KERNEL(grid, 32 * (s.Tn / 16), smem, stream_of(l), fused_backward_kernel<HS, TO>)
  (dqkv, scores, stats, qkv, dout, key_valid, g);
  ERL_CUDA_LAUNCHED();
}

}  // namespace

bool fused_attention_backward_supported(const AttentionShape& s) {
  if (s.HS != 64 && s.HS != 128 && s.HS != 256) return false;
  if (s.Tn % 16 != 0 || s.Tn < 16 || s.Tn > kMaxT) return false;
  return static_cast<int64_t>(smem_bytes(s.Tn, s.HS)) <= device_smem_optin();
}

void fused_attention_backward(const Launch& l, Act<float> dqkv, const uint16_t* scores, const float* stats,
                              const uint16_t* qkv16, const uint16_t* dout16, const uint8_t* key_valid,
                              const AttentionShape& s, const DropoutSpec& dropout) {
  ERL_CHECK(fused_attention_backward_supported(s), "cuda::fused_attention_backward: shape T "
                                                       << s.Tn << " HS " << s.HS << " not supported here");
  const Geometry g = attention_geometry(s, dropout);
  const auto* q = reinterpret_cast<const bf16_t*>(qkv16);
  const auto* d = reinterpret_cast<const bf16_t*>(dout16);
  const auto* st = reinterpret_cast<const float2*>(stats);
  with_head_size(s.HS, "fused_attention_backward", [&](auto hs) {
    constexpr int HS = decltype(hs)::value;
    if (dqkv.is_bf16()) launch<HS>(l, device_bf16(dqkv.h), scores, st, q, d, key_valid, s, g);
    else launch<HS>(l, dqkv.f, scores, st, q, d, key_valid, s, g);
  });
}

}  // namespace erlangshen::cuda
