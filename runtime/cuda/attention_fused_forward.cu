// The fused attention forward (attention_fused_forward.h) on mma.sync tensor-core tiles held in registers
// (mma.cuh), one block per (16 x warps query rows, head h, sample b), each warp owning 16 query rows (8 warps at
// head dim 256, 4 below: warps_for). Notation as in attention.cu: S = Q K^T * scale rounded to bf16 (scale =
// 1/sqrt(HS)), P_ij = exp(S_ij - m_i) / l_i over the valid keys, Pd = dropout(P), O = Pd V.
//
// Over the key tiles of 64 (K and V tiles in shared memory, loaded with cp.async while earlier tiles are in use:
// with two buffers each (8-warp blocks) K_{j+1} and V_{j+1} during all of tile j's work, one barrier a tile; with one
// (4-warp blocks) V_j during S_j = Q K_j^T and K_{j+1} during O += Pd_j V_j), each warp, in registers (online
// softmax):
//   S tile (16 x 64, fp32 accumulators) = Q K_j^T;  S <- bf16(S * scale), written to `scores` (the saved state)
//   m_new = max(m, max over the tile's valid keys of S);  alpha = exp(m - m_new)
//   P = exp(S - m_new) (0 for a padded key);  l <- l * alpha + sum_j P;  O <- O * alpha
//   O += bf16(dropout(P)) V_j   (the S accumulators, rounded to bf16 pairs, are the A operand as they lie)
// and at the end O <- O / l (0 where l = 0: a row without a valid key), stats = (m, 1 / l). The unfused backward
// recomputes P = exp(S - m) / l from the saved S and stats: the same P up to the rounding of l (summed here tile by
// tile and rescaled, there in one pass; ~1 ulp of fp32), and the dropout mask bit for bit.
// Each thread keeps its two rows' partial sums l and sums the 4 threads of a row once at the end (m is the same in
// all four: the tile maxima are reduced across them first).
// Dropout: the keep bits of the CPU backend's rule, 4 per Philox block (attention_fragments.cuh).
// Shared memory: Q (16 x warps rows x HS), K, V (64 x HS, one or two of each) bf16 rows padded by 16 bytes (so the 8
// rows of an ldmatrix fall in different banks): 198 KiB at HS 256 (8 warps, two stages: one block an SM; 4 warps
// and one stage: 99 KiB, two), 52 / 27 KiB at HS 128 / 64 (4 warps).
// Rows past T (the last query tile) are computed on zeros and not stored; keys past T are zeros, masked as padded.
#include "runtime/cuda/attention_fused_forward.h"

#include <cuda_bf16.h>

#include <cmath>

#include "runtime/cuda/attention_fragments.cuh"
#include "runtime/cuda/attention_geometry.cuh"
#include "runtime/cuda/common.cuh"
#include "runtime/cuda/mma.cuh"
#include "runtime/cuda/storage.cuh"
#include "runtime/philox.h"

namespace erlangshen::cuda {
namespace {

using bf16_t = __nv_bfloat16;
using namespace fragments;  // NOLINT: the accumulator-fragment helpers (attention_fragments.cuh)

constexpr int kKeys = 64;              // keys per tile
constexpr int kKeyTiles8 = kKeys / 8;  // 8-key accumulator tiles per key tile
// Warps per block, each owning 16 query rows. Every block reads all of its head's K and V (from L2), so more rows a
// block means less of that traffic: at head dim 256 (246 registers a thread, so 8 warps an SM either way) 8 warps,
// 128 rows, one block an SM, half the K/V reads of 4-warp blocks; at 64 and 128 (128 and 165 registers) 4 warps,
// four or three blocks an SM.
// ContextOptions::fused_attention_forward_warps (4 or 8) overrides it, for the attention probe to time both.
constexpr int warps_for(int HS) { return HS == 256 ? 8 : 4; }

template <int HS>
constexpr int row_ld() {  // bf16 elements per shared-memory row
  return HS + 8;
}
// K and V buffers: 2 (the next tile's K and V load during the whole of this tile's work, one barrier a tile) for
// 8-warp blocks, which are one an SM at head dim 256 and have the shared memory; 1 for 4-warp blocks, which run
// several an SM (K_{j+1} loads during Pd V_j and V_j during Q K_j^T, two barriers a tile).
constexpr int stages_for(int warps) { return warps == 8 ? 2 : 1; }
constexpr size_t smem_bytes(int HS, int warps) {
  return static_cast<size_t>(16 * warps + 2 * stages_for(warps) * kKeys) * (HS + 8) * sizeof(uint16_t);
}

using Geometry = AttentionGeometry;

// Rows t0 .. t0 + ROWS of slot `which` of head h into a shared tile (rows past T zero), 16 bytes per cp.async.
template <int HS, int ROWS, int THREADS>
__device__ void load_tile(bf16_t* dst, const bf16_t* qkv, const Geometry& g, int b, int t0, int which, int h) {
  cp_async_rows<HS>(dst, row_ld<HS>(), qkv, t0, ROWS, g.T, THREADS,
                    [&](int t) { return g.qkv_row(b, t, which, h); });
}

template <int HS, int WARPS, class TO>
__global__ void __launch_bounds__(32 * WARPS) fused_forward_kernel(TO* out, uint16_t* scores, float2* stats,
                                                                 const bf16_t* qkv, const uint8_t* key_valid,
                                                                 Geometry g) {
  ERL_DYNAMIC_SHARED(smem);
  constexpr int ld = row_ld<HS>();
  constexpr int kRows = 16 * WARPS, kThreads = 32 * WARPS, kStages = stages_for(WARPS);
  bf16_t* sQ = reinterpret_cast<bf16_t*>(smem);       // (kRows, HS)
  bf16_t* sK0 = sQ + kRows * ld;                      // kStages x (kKeys, HS)
  bf16_t* sV0 = sK0 + kStages * kKeys * ld;           // kStages x (kKeys, HS)
  const int b = blockIdx.z, h = blockIdx.y, q0 = blockIdx.x * kRows, T = g.T;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, gq = lane / 4, tq = lane % 4;
  const int row_g = q0 + 16 * warp + gq, row_g8 = row_g + 8;  // this thread's two query rows
  const uint8_t* valid = key_valid + static_cast<int64_t>(b) * T;
  const uint64_t drop_g = g.drop_row(b, h, row_g), drop_g8 = g.drop_row(b, h, row_g8);
  uint16_t* s_g = scores + g.stat_row(b, h, row_g) * T;
  uint16_t* s_g8 = scores + g.stat_row(b, h, row_g8) * T;

  load_tile<HS, kRows, kThreads>(sQ, qkv, g, b, q0, 0, h);
  load_tile<HS, kKeys, kThreads>(sK0, qkv, g, b, 0, 1, h);
  if (kStages == 2) load_tile<HS, kKeys, kThreads>(sV0, qkv, g, b, 0, 2, h);
  mma::cp_async_commit();

  float o[HS / 8][4];  // O (16 x HS): 8-column tile n, rows g (o[n][0..1]) and g+8 (o[n][2..3])
#pragma unroll
  for (int n = 0; n < HS / 8; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
  float m[2] = {-INFINITY, -INFINITY};  // running max of rows g, g+8 (the same in the row's 4 threads)
  float l[2] = {0.0f, 0.0f};            // this thread's part of the running sums

  const int tiles = (T + kKeys - 1) / kKeys;
  for (int kt = 0; kt < tiles; ++kt) {
    const int j0 = kt * kKeys;
    bf16_t* sK = sK0 + (kt % kStages) * kKeys * ld;
    bf16_t* sV = sV0 + (kt % kStages) * kKeys * ld;
    mma::cp_async_wait_all();
    __syncthreads();  // K_j (and Q; 2 stages: V_j) in; every warp is done with the buffers of tile j-1
    if (kStages == 2) {  // tile j+1 into the other buffers while this one is worked on
      if (kt + 1 < tiles) {
        load_tile<HS, kKeys, kThreads>(sK0 + ((kt + 1) % 2) * kKeys * ld, qkv, g, b, j0 + kKeys, 1, h);
        load_tile<HS, kKeys, kThreads>(sV0 + ((kt + 1) % 2) * kKeys * ld, qkv, g, b, j0 + kKeys, 2, h);
      }
    } else {
      load_tile<HS, kKeys, kThreads>(sV, qkv, g, b, j0, 2, h);
    }
    mma::cp_async_commit();

    float s[kKeyTiles8][4];  // S (16 x 64): 8-key tile n, element e as o's
#pragma unroll
    for (int n = 0; n < kKeyTiles8; ++n) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
    product_nt_into<kKeyTiles8, HS / 16, 4>(s, kKeyTiles8, sQ + 16 * warp * ld, ld, sK, ld, lane);

    // The saved logits, the tile's row maxima over the valid keys.
    unsigned valid_bits = 0;  // bit 2n + c: key j0 + 8n + 2t + c valid
    float tile_max[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int n = 0; n < kKeyTiles8; ++n) {
      const int j = j0 + 8 * n + 2 * tq;
      const bool in = j0 + 8 * n < T;  // T % 8 == 0: a tile is in or out as a whole
#pragma unroll
      for (int c = 0; c < 2; ++c)
        if (in && valid[j + c]) valid_bits |= 1u << (2 * n + c);
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        s[n][e] = __bfloat162float(__float2bfloat16_rn(s[n][e] * g.scale));
        if ((valid_bits >> (2 * n + (e & 1))) & 1u) tile_max[e / 2] = fmaxf(tile_max[e / 2], s[n][e]);
      }
      if (in) {
        if (row_g < T) *reinterpret_cast<uint32_t*>(s_g + j) = mma::pack_bf16(s[n][0], s[n][1]);
        if (row_g8 < T) *reinterpret_cast<uint32_t*>(s_g8 + j) = mma::pack_bf16(s[n][2], s[n][3]);
      }
    }
    float alpha[2], base[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const float m_new = fmaxf(m[r], quad_max(tile_max[r]));
      alpha[r] = m_new == -INFINITY ? 1.0f : __expf(m[r] - m_new);  // exp(-inf) = 0: nothing summed before
      base[r] = m_new == -INFINITY ? 0.0f : m_new;
      m[r] = m_new;
      l[r] *= alpha[r];
    }
#pragma unroll
    for (int n = 0; n < kKeyTiles8; ++n) {
      const unsigned keep = g.drop ? keep_bits(g, drop_g, drop_g8, j0 + 8 * n, tq) : 0xfu;
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const float p = ((valid_bits >> (2 * n + (e & 1))) & 1u) ? __expf(s[n][e] - base[e / 2]) : 0.0f;
        l[e / 2] += p;
        s[n][e] = ((keep >> e) & 1u) ? (g.drop ? p * g.keep_scale : p) : 0.0f;
      }
    }
#pragma unroll
    for (int n = 0; n < HS / 8; ++n) {
      o[n][0] *= alpha[0], o[n][1] *= alpha[0];
      o[n][2] *= alpha[1], o[n][3] *= alpha[1];
    }

    if (kStages == 1) {
      mma::cp_async_wait_all();
      __syncthreads();  // V_j in; every warp is done with K_j
      if (kt + 1 < tiles) {
        load_tile<HS, kKeys, kThreads>(sK, qkv, g, b, j0 + kKeys, 1, h);
        mma::cp_async_commit();
      }
    }
    product_into<HS / 8, kKeys / 16>(
        o, kKeys / 16,
        [&](int ks, uint32_t(&a)[4]) {
          a[0] = mma::pack_bf16(s[2 * ks][0], s[2 * ks][1]), a[1] = mma::pack_bf16(s[2 * ks][2], s[2 * ks][3]);
          a[2] = mma::pack_bf16(s[2 * ks + 1][0], s[2 * ks + 1][1]);
          a[3] = mma::pack_bf16(s[2 * ks + 1][2], s[2 * ks + 1][3]);
        },
        sV, ld, lane);
  }

  float inv[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const float sum = quad_sum(l[r]);
    inv[r] = sum > 0.0f ? 1.0f / sum : 0.0f;
  }
  TO* o_g = out + (static_cast<int64_t>(b) * T + row_g) * g.C + static_cast<int64_t>(h) * HS + 2 * tq;
  TO* o_g8 = o_g + static_cast<int64_t>(8) * g.C;
#pragma unroll
  for (int n = 0; n < HS / 8; ++n) {
    if (row_g < T) store_pair(o_g + 8 * n, o[n][0] * inv[0], o[n][1] * inv[0]);
    if (row_g8 < T) store_pair(o_g8 + 8 * n, o[n][2] * inv[1], o[n][3] * inv[1]);
  }
  if (tq == 0) {
    if (row_g < T) stats[g.stat_row(b, h, row_g)] = make_float2(m[0], inv[0]);
    if (row_g8 < T) stats[g.stat_row(b, h, row_g8)] = make_float2(m[1], inv[1]);
  }
}

template <int HS, int WARPS, class TO>
void launch(const Launch& l, TO* out, uint16_t* scores, float2* stats, const bf16_t* qkv, const uint8_t* key_valid,
            const AttentionShape& s, const Geometry& g) {
  const size_t smem = smem_bytes(HS, WARPS);
  allow_smem(fused_forward_kernel<HS, WARPS, TO>, smem);
  const dim3 grid((s.Tn + 16 * WARPS - 1) / (16 * WARPS), s.NH, s.B);
  ERL_KERNEL(grid, 32 * WARPS, smem, stream_of(l), fused_forward_kernel<HS, WARPS, TO>)
  (out, scores, stats, qkv, key_valid, g);
  ERL_CUDA_LAUNCHED();
}

}  // namespace

bool fused_attention_forward_supported(const AttentionShape& s) {
  if (s.HS != 64 && s.HS != 128 && s.HS != 256) return false;
  if (s.Tn % 8 != 0) return false;
  return static_cast<int64_t>(smem_bytes(s.HS, 8)) <= device_smem_optin();
}

void fused_attention_forward(const Launch& l, Act<float> out, uint16_t* scores, float* stats, const uint16_t* qkv16,
                             const uint8_t* key_valid, const AttentionShape& s, const DropoutSpec& dropout) {
  ERL_CHECK(fused_attention_forward_supported(s), "cuda::fused_attention_forward: shape T " << s.Tn << " HS " << s.HS
                                                                                          << " not supported here");
  const Geometry g = attention_geometry(s, dropout);
  const auto* q = reinterpret_cast<const bf16_t*>(qkv16);
  auto* st = reinterpret_cast<float2*>(stats);
  const int asked = need_context(l, "fused_attention_forward").options().fused_attention_forward_warps;
  ERL_CHECK(asked == 0 || asked == 4 || asked == 8,
            "cuda::fused_attention_forward: " << asked << " warps a block (ContextOptions: 0, 4 or 8)");
  with_head_size(s.HS, "fused_attention_forward", [&](auto hs) {
    constexpr int HS = decltype(hs)::value;
    const bool eight = (asked ? asked : warps_for(HS)) == 8;
    auto run = [&](auto* o) {
      if (eight) launch<HS, 8>(l, o, scores, st, q, key_valid, s, g);
      else launch<HS, 4>(l, o, scores, st, q, key_valid, s, g);
    };
    if (out.is_bf16()) run(device_bf16(out.h));
    else run(out.f);
  });
}

}  // namespace erlangshen::cuda
