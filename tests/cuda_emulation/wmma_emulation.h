// nvcuda::wmma (CUDA's warp matrix API, <mma.h>) for the CUDA emulation (cuda_emulation.h includes it).
// The API leaves the mapping of a fragment's elements to lanes unspecified, and a kernel may only load, store,
// fill, multiply-accumulate, or apply one operation to every element. So here every lane holds the whole tile
// (element (r, c) at x[r * cols + c]) and computes the whole product itself: the results are those of the warp
// operation, with no exchange between lanes. A lane loads when it reaches the call (lanes run one after another
// between collectives, cuda_emulation.h) and stores only the elements e with e % 32 == its lane: so a lane that
// loads shared memory before the other lanes of its warp wrote it (a missing __syncwarp) leaves wrong values in
// its share of the result, as a GPU may. Checked as the CUDA documentation requires: pointers 32-byte aligned,
// ldm a multiple of 16 bytes. Only the shapes the backend uses: 16 x 16 x 16 with __nv_bfloat16 A/B and float
// accumulators.
#pragma once
#include <cuda_bf16.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>

namespace nvcuda {
namespace wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

template <class Use, int M, int N, int K, class T, class Layout = void>
struct fragment {
  static_assert(M == 16 && N == 16 && K == 16, "CUDA emulation: only 16 x 16 x 16 wmma fragments");
  static constexpr int rows = std::is_same<Use, matrix_b>::value ? K : M;
  static constexpr int cols = std::is_same<Use, matrix_a>::value ? K : N;
  static constexpr int num_elements = rows * cols;
  T x[num_elements];
};

namespace detail {
inline void check_pointer(const void* p, unsigned ldm, size_t elem, const char* what) {
  if (reinterpret_cast<uintptr_t>(p) % 32 != 0 || (ldm * elem) % 16 != 0)
    throw std::runtime_error(std::string("CUDA emulation: wmma::") + what +
                             ": the pointer must be 32-byte aligned and ldm a multiple of 16 bytes");
}
inline float widen(float v) { return v; }
inline float widen(__nv_bfloat16 v) { return __bfloat162float(v); }
}  // namespace detail

template <class Use, int M, int N, int K, class T>
void load_matrix_sync(fragment<Use, M, N, K, T, row_major>& f, const T* p, unsigned ldm) {
  detail::check_pointer(p, ldm, sizeof(T), "load_matrix_sync");
  using F = fragment<Use, M, N, K, T, row_major>;
  for (int r = 0; r < F::rows; ++r)
    for (int c = 0; c < F::cols; ++c) f.x[r * F::cols + c] = p[static_cast<size_t>(r) * ldm + c];
}
template <class Use, int M, int N, int K, class T>
void load_matrix_sync(fragment<Use, M, N, K, T, col_major>& f, const T* p, unsigned ldm) {
  detail::check_pointer(p, ldm, sizeof(T), "load_matrix_sync");
  using F = fragment<Use, M, N, K, T, col_major>;
  for (int r = 0; r < F::rows; ++r)
    for (int c = 0; c < F::cols; ++c) f.x[r * F::cols + c] = p[static_cast<size_t>(c) * ldm + r];
}
template <int M, int N, int K>
void load_matrix_sync(fragment<accumulator, M, N, K, float>& f, const float* p, unsigned ldm, layout_t layout) {
  detail::check_pointer(p, ldm, sizeof(float), "load_matrix_sync");
  for (int r = 0; r < M; ++r)
    for (int c = 0; c < N; ++c)
      f.x[r * N + c] =
          layout == mem_row_major ? p[static_cast<size_t>(r) * ldm + c] : p[static_cast<size_t>(c) * ldm + r];
}
template <int M, int N, int K>
void store_matrix_sync(float* p, const fragment<accumulator, M, N, K, float>& f, unsigned ldm, layout_t layout) {
  detail::check_pointer(p, ldm, sizeof(float), "store_matrix_sync");
  const auto& t = ::erl_emu::coords();
  const int lane =
      static_cast<int>((t.thread_idx.x + t.block_dim.x * (t.thread_idx.y + t.block_dim.y * t.thread_idx.z)) % 32);
  for (int e = lane; e < M * N; e += 32) {
    const int r = e / N, c = e % N;
    (layout == mem_row_major ? p[static_cast<size_t>(r) * ldm + c] : p[static_cast<size_t>(c) * ldm + r]) = f.x[e];
  }
}
template <class Use, int M, int N, int K, class T, class Layout, class V>
void fill_fragment(fragment<Use, M, N, K, T, Layout>& f, V v) {
  for (auto& e : f.x) e = static_cast<T>(v);
}
// d = a b + c with fp32 products and sums (bf16 x bf16 products are exact in fp32).
template <int M, int N, int K, class T, class LA, class LB>
void mma_sync(fragment<accumulator, M, N, K, float>& d, const fragment<matrix_a, M, N, K, T, LA>& a,
              const fragment<matrix_b, M, N, K, T, LB>& b, const fragment<accumulator, M, N, K, float>& c) {
  float out[M * N];
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j) {
      float s = c.x[i * N + j];
      for (int k = 0; k < K; ++k) s += detail::widen(a.x[i * K + k]) * detail::widen(b.x[k * N + j]);
      out[i * N + j] = s;
    }
  for (int e = 0; e < M * N; ++e) d.x[e] = out[e];
}

}  // namespace wmma
}  // namespace nvcuda
