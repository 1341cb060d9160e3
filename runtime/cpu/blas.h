// Row-major CBLAS GEMM for float and double, one name for both element types: so the CPU kernels that are
// templates over their scalar type call gemm(...) and get sgemm or dgemm.
//   c (m, n) = alpha * op(a) (m, k) op(b) (k, n) + beta * c
#pragma once
#include <cblas.h>

namespace erlangshen::cpu {

inline void gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int m, int n, int k, float alpha, const float* a, int lda,
                 const float* b, int ldb, float beta, float* c, int ldc) {
  cblas_sgemm(CblasRowMajor, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
inline void gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int m, int n, int k, double alpha, const double* a, int lda,
                 const double* b, int ldb, double beta, double* c, int ldc) {
  cblas_dgemm(CblasRowMajor, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

}  // namespace erlangshen::cpu
