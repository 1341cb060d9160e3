// GEMM through CBLAS (OpenBLAS, single-threaded per OpenMP thread). Work is split into blocks of output rows
// or columns so both cores stay busy with no cross-thread reduction. Each thread's sgemm packs (copies into
// its kernel layout) its slice of the split operand plus all of the other one, so we split the side that makes
// the shared operand the smaller: for out (M, N) = A (M, K) B (K, N), a row split packs M*K/t + K*N per thread,
// a column split M*K + K*N/t; rows win iff M >= N.
#include <cstring>

#include "runtime/cpu/blas.h"
#include "runtime/cpu/kernels.h"
#include "runtime/cpu/parallel_for.h"

namespace erlangshen::cpu {

// out (N, OC) = inp (N, C) @ weight (OC, C)^T + bias
template <class T>
void matmul_forward(T* out, const T* inp, const T* weight, const T* bias, int N, int C, int OC, bool accumulate) {
  const bool split_rows = N >= OC;
  auto block = [&](int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
    T beta = accumulate ? T(1) : T(0);
    if (bias) {
      for (int64_t r = r0; r < r1; ++r) {
        T* o = out + r * OC;
        for (int64_t c = c0; c < c1; ++c) o[c] = (accumulate ? o[c] : T(0)) + bias[c];
      }
      beta = T(1);
    }
    gemm(CblasNoTrans, CblasTrans, static_cast<int>(r1 - r0), static_cast<int>(c1 - c0), C, T(1), inp + r0 * C, C,
         weight + c0 * C, C, beta, out + r0 * OC + c0, OC);
  };
  if (split_rows) parallel_blocks(N, 16, [&](int64_t r0, int64_t r1) { block(r0, r1, 0, OC); });
  else parallel_blocks(OC, 64, [&](int64_t c0, int64_t c1) { block(0, N, c0, c1); });
}

template <class T>
void matmul_backward(T* dinp, T* dweight, T* dbias, const T* dout, const T* inp, const T* weight, int N, int C, int OC,
                     bool accumulate_dinp) {
  // dinp (N, C) = dout (N, OC) @ weight (OC, C)
  if (dinp) {
    const bool split_rows = N >= C;
    const T beta = accumulate_dinp ? T(1) : T(0);
    if (split_rows) {
      parallel_blocks(N, 16, [&](int64_t r0, int64_t r1) {
        gemm(CblasNoTrans, CblasNoTrans, static_cast<int>(r1 - r0), C, OC, T(1), dout + r0 * OC, OC, weight, C, beta,
             dinp + r0 * C, C);
      });
    } else {
      parallel_blocks(C, 64, [&](int64_t c0, int64_t c1) {
        gemm(CblasNoTrans, CblasNoTrans, N, static_cast<int>(c1 - c0), OC, T(1), dout, OC, weight + c0, C, beta,
             dinp + c0, C);
      });
    }
  }
  // dweight (OC, C) += dout^T (OC, N) @ inp (N, C);  dbias (OC) += column sums of dout
  if (dweight && C > OC) {
    parallel_blocks(C, 64, [&](int64_t c0, int64_t c1) {
      gemm(CblasTrans, CblasNoTrans, OC, static_cast<int>(c1 - c0), N, T(1), dout, OC, inp + c0, C, T(1),
           dweight + c0, C);
    });
    dweight = nullptr;  // done; dbias below
  }
  if (dweight || dbias) {
    parallel_blocks(OC, 16, [&](int64_t o0, int64_t o1) {
      if (dweight)
        gemm(CblasTrans, CblasNoTrans, static_cast<int>(o1 - o0), C, N, T(1), dout + o0, OC, inp, C, T(1),
             dweight + o0 * C, C);
      if (dbias)
        for (int64_t n = 0; n < N; ++n) {
          const T* d = dout + n * OC;
          for (int64_t o = o0; o < o1; ++o) dbias[o] += d[o];
        }
    });
  }
}

template void matmul_forward<float>(float*, const float*, const float*, const float*, int, int, int, bool);
template void matmul_forward<double>(double*, const double*, const double*, const double*, int, int, int, bool);
template void matmul_backward<float>(float*, float*, float*, const float*, const float*, const float*, int, int, int, bool);
template void matmul_backward<double>(double*, double*, double*, const double*, const double*, const double*, int, int,
                                      int, bool);

}  // namespace erlangshen::cpu
