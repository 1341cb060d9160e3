// Warp-level tensor-core primitives at the register level (PTX), for kernels that keep their matrix tiles in
// registers with a known element-to-lane layout (attention_fused_forward.cu): unlike nvcuda::wmma, whose fragment
// layout is unspecified, these let a kernel work on the accumulators element by element (softmax in registers) and
// feed an accumulator straight back in as an A operand.
//
// Layouts (PTX ISA, "Matrix Fragments for mma.m16n8k16" with .bf16), lane = 4 g + t (g = lane / 4 the group, t =
// lane % 4 the thread in the group); a 32-bit register holds two bf16, the lower column in the low half:
//   A (16 x 16, row-major)  a[0] = A[g][2t, 2t+1]      a[1] = A[g+8][2t, 2t+1]
//                           a[2] = A[g][2t+8, 2t+9]    a[3] = A[g+8][2t+8, 2t+9]
//   B (16 x 8, k x n)       b[0] = B[2t, 2t+1][g]      b[1] = B[2t+8, 2t+9][g]
//   C, D (16 x 8, fp32)     c[0], c[1] = C[g][2t, 2t+1]   c[2], c[3] = C[g+8][2t, 2t+1]
// So two adjacent 8-column accumulator tiles of a product, rounded to bf16 pairs, are the A operand of the next
// product's 16-wide k step: (c0 c1 of tile 0, c2 c3 of tile 0, c0 c1 of tile 1, c2 c3 of tile 1) -> a[0..3].
//
// ldmatrix (m8n8, .x4, b16): lane l gives the shared-memory address of row l % 8 of 8 x 8 matrix l / 8 (16
// contiguous bytes); register m of lane 4 g + t then holds matrix m's row g, columns 2t and 2t+1 (without .trans),
// or its rows 2t and 2t+1 of column g (with .trans). Loaded from a row-major tile, that is an A fragment (the four
// matrices at rows +0/+8 x columns +0/+8), a B fragment of a row-major (n x k) tile without .trans, and a B
// fragment of a row-major (k x n) tile with .trans.
//
// cp.async (16 bytes, global to shared, bypassing L1 and the registers): copies complete in the background; a
// thread sees its own after cp_async_wait_all, and others' after their wait and a __syncthreads.
//
// Under the CUDA emulation (tests/cuda_emulation) each of these is a warp gather plus the same layout rules in C++,
// and cp.async a copy deferred to the thread's wait.
#pragma once
#include <cuda_bf16.h>

#include <cstdint>
#include <cstring>
#include <stdexcept>

namespace erlangshen::cuda::mma {

// Two floats rounded to bf16 (nearest even) in one register: lo in the low half.
__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  const __nv_bfloat16 l = __float2bfloat16_rn(lo), h = __float2bfloat16_rn(hi);
  uint16_t lb, hb;
  memcpy(&lb, &l, 2);
  memcpy(&hb, &h, 2);
  return static_cast<uint32_t>(lb) | (static_cast<uint32_t>(hb) << 16);
}

#ifndef ERL_CUDA_EMULATION

// d = a b + c (16 x 8 x 16, bf16 inputs, fp32 accumulation); d may alias c.
__device__ __forceinline__ void mma_bf16_16816(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2],
                                               const float (&c)[4]) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%10,%11,%12,%13};\n"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]),
        "f"(c[3]));
}

__device__ __forceinline__ uint32_t smem_address(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// r[m] = 8 x 8 matrix m's fragment; row_address: this lane's row (16 bytes, 16-byte aligned, shared memory).
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* row_address) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_address(row_address)));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* row_address) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_address(row_address)));
}

// 16 bytes global -> shared (both 16-byte aligned), asynchronously.
__device__ __forceinline__ void cp_async_16(void* smem, const void* gmem) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(smem_address(smem)), "l"(gmem));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
// Waits for every cp.async this thread issued (and committed).
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_group 0;\n" ::: "memory"); }

#else  // the CUDA emulation: the same layouts through a warp gather

namespace detail {
inline int lane_id() {
  const auto& t = ::erl_emu::coords();
  return static_cast<int>((t.thread_idx.x + t.block_dim.x * (t.thread_idx.y + t.block_dim.y * t.thread_idx.z)) % 32);
}
// The bf16 in the low (which 0) or high half of a register, as a float (exact: a bf16 is a float's top half).
inline float half_of(uint32_t r, int which) { return __uint_as_float(which == 0 ? r << 16 : r & 0xffff0000u); }
}  // namespace detail

inline void mma_bf16_16816(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2], const float (&c)[4]) {
  struct Regs {
    uint32_t a[4], b[2];
  };
  const Regs mine{{a[0], a[1], a[2], a[3]}, {b[0], b[1]}};
  Regs all[32];
  ::erl_emu::warp_gather(&mine, sizeof(Regs), all);
  // A[row][k] and B[k][n] from the lanes that hold them (header comment).
  auto A = [&](int row, int k) {
    const int g = row % 8, t = (k % 8) / 2, reg = (row >= 8 ? 1 : 0) + (k >= 8 ? 2 : 0);
    return detail::half_of(all[4 * g + t].a[reg], k % 2);
  };
  auto B = [&](int k, int n) {
    const int t = (k % 8) / 2;
    return detail::half_of(all[4 * n + t].b[k >= 8 ? 1 : 0], k % 2);
  };
  const int lane = detail::lane_id(), g = lane / 4, t = lane % 4;
  float out[4];
  for (int e = 0; e < 4; ++e) {
    const int row = g + (e >= 2 ? 8 : 0), col = 2 * t + (e % 2);
    float s = c[e];
    for (int k = 0; k < 16; ++k) s += A(row, k) * B(k, col);  // bf16 x bf16 is exact in fp32
    out[e] = s;
  }
  for (int e = 0; e < 4; ++e) d[e] = out[e];
}

namespace detail {
// Every lane's 16-byte row as it reads it now (a lane that reads before another lane of its warp wrote the row,
// without a __syncwarp between, sees the old bytes, as it may on a GPU).
inline void gather_rows(const void* row_address, uint16_t (&rows)[32][8]) {
  if (reinterpret_cast<uintptr_t>(row_address) % 16 != 0)
    throw std::runtime_error("CUDA emulation: ldmatrix row address not 16-byte aligned");
  uint16_t mine[8];
  std::memcpy(mine, row_address, 16);
  ::erl_emu::warp_gather(mine, 16, rows);
}
inline uint32_t pair(uint16_t lo, uint16_t hi) { return static_cast<uint32_t>(lo) | (static_cast<uint32_t>(hi) << 16); }
}  // namespace detail

inline void ldmatrix_x4(uint32_t (&r)[4], const void* row_address) {
  uint16_t rows[32][8];
  detail::gather_rows(row_address, rows);
  const int lane = detail::lane_id(), g = lane / 4, t = lane % 4;
  for (int m = 0; m < 4; ++m) r[m] = detail::pair(rows[8 * m + g][2 * t], rows[8 * m + g][2 * t + 1]);
}
inline void ldmatrix_x4_trans(uint32_t (&r)[4], const void* row_address) {
  uint16_t rows[32][8];
  detail::gather_rows(row_address, rows);
  const int lane = detail::lane_id(), g = lane / 4, t = lane % 4;
  for (int m = 0; m < 4; ++m) r[m] = detail::pair(rows[8 * m + 2 * t][g], rows[8 * m + 2 * t + 1][g]);
}

inline void cp_async_16(void* smem, const void* gmem) {
  if (reinterpret_cast<uintptr_t>(smem) % 16 != 0 || reinterpret_cast<uintptr_t>(gmem) % 16 != 0)
    throw std::runtime_error("CUDA emulation: cp.async of 16 bytes needs 16-byte aligned addresses");
  ::erl_emu::cp_async_queue(smem, gmem, 16);
}
inline void cp_async_commit() {}
inline void cp_async_wait_all() { ::erl_emu::cp_async_wait_all(); }

#endif

}  // namespace erlangshen::cuda::mma
