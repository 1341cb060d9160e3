// Softmax cross-entropy in pieces that compose across a vocab-parallel class axis (see kernels.h), and the
// row gather/scatter that restricts the MLM head to masked positions.
#include <cmath>
#include <cstring>
#include <limits>

#include "runtime/cpu/fast_math.h"
#include "runtime/cpu/kernels.h"

namespace erlangshen::cpu {

template <class T>
void ce_rowmax(T* rowmax, const T* logits, int M, int V) {
#pragma omp parallel for schedule(static)
  for (int m = 0; m < M; ++m) {
    const T* l = logits + static_cast<int64_t>(m) * V;
    T mx = -std::numeric_limits<T>::infinity();
    for (int v = 0; v < V; ++v) mx = l[v] > mx ? l[v] : mx;
    rowmax[m] = mx;
  }
}

template <class T>
void ce_sumexp_target(T* sumexp, T* target_logit, const T* logits, const T* rowmax, const int32_t* targets, int M, int V,
                      int vocab_start) {
#pragma omp parallel for schedule(static)
  for (int m = 0; m < M; ++m) {
    const T* l = logits + static_cast<int64_t>(m) * V;
    const T mx = rowmax[m];
    T s = 0;
#pragma omp simd reduction(+ : s)
    for (int v = 0; v < V; ++v) s += exp_fast(l[v] - mx);
    sumexp[m] = s;
    const int local = targets[m] - vocab_start;
    target_logit[m] = (local >= 0 && local < V) ? l[local] : T(0);
  }
}

template <class T>
void ce_backward(T* dlogits, const T* logits, const T* rowmax, const T* sumexp, const int32_t* targets, const T* dloss,
                 int M, int V, int vocab_start) {
#pragma omp parallel for schedule(static)
  for (int m = 0; m < M; ++m) {
    const T* l = logits + static_cast<int64_t>(m) * V;
    T* d = dlogits + static_cast<int64_t>(m) * V;
    const T mx = rowmax[m], inv = T(1) / sumexp[m], g = dloss[m];
#pragma omp simd
    for (int v = 0; v < V; ++v) d[v] = exp_fast(l[v] - mx) * inv * g;
    const int local = targets[m] - vocab_start;
    if (local >= 0 && local < V) d[local] -= g;
  }
}

template <class T>
void gather_rows(T* out, const T* inp, const int32_t* idx, int M, int C) {
#pragma omp parallel for schedule(static)
  for (int m = 0; m < M; ++m)
    std::memcpy(out + static_cast<int64_t>(m) * C, inp + static_cast<int64_t>(idx[m]) * C, sizeof(T) * C);
}

template <class T>
void scatter_add_rows(T* dinp, const T* dout, const int32_t* idx, int M, int C) {
#pragma omp parallel for schedule(static)
  for (int m = 0; m < M; ++m) {
    T* d = dinp + static_cast<int64_t>(idx[m]) * C;
    const T* g = dout + static_cast<int64_t>(m) * C;
    for (int c = 0; c < C; ++c) d[c] += g[c];
  }
}

#define ERL_INSTANTIATE(T)                                                                                   \
  template void ce_rowmax<T>(T*, const T*, int, int);                                                        \
  template void ce_sumexp_target<T>(T*, T*, const T*, const T*, const int32_t*, int, int, int);              \
  template void ce_backward<T>(T*, const T*, const T*, const T*, const int32_t*, const T*, int, int, int);   \
  template void gather_rows<T>(T*, const T*, const int32_t*, int, int);                                      \
  template void scatter_add_rows<T>(T*, const T*, const int32_t*, int, int);
ERL_INSTANTIATE(float)
ERL_INSTANTIATE(double)
#undef ERL_INSTANTIATE

}  // namespace erlangshen::cpu
