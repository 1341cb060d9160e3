// AdamW update and the vector reductions used around it (grad norm, scaling).
#include <cmath>
#include <vector>

#include "runtime/cpu/kernels.h"
#include "runtime/cpu/parallel_for.h"

namespace erlangshen::cpu {

template <class T>
void adamw_update(T* param, const T* grad, T* m, T* v, int64_t n, double lr, double beta1, double beta2, double eps,
                  double weight_decay, int64_t step, double grad_scale) {
  const double bc1 = 1.0 - std::pow(beta1, static_cast<double>(step));
  const double bc2 = 1.0 - std::pow(beta2, static_cast<double>(step));
  const T b1 = T(beta1), b2 = T(beta2), gs = T(grad_scale);
  const T step_size = T(lr / bc1), inv_sqrt_bc2 = T(1.0 / std::sqrt(bc2)), e = T(eps), decay = T(lr * weight_decay);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const T g = grad[i] * gs;
    const T mi = b1 * m[i] + (T(1) - b1) * g;
    const T vi = b2 * v[i] + (T(1) - b2) * g * g;
    m[i] = mi;
    v[i] = vi;
    param[i] -= step_size * mi / (std::sqrt(vi) * inv_sqrt_bc2 + e) + decay * param[i];
  }
}

template <class T>
double sum_squares(const T* x, int64_t n) {
  // Fixed chunks of 4096 summed in order: the result does not depend on the thread count.
  constexpr int64_t kChunk = 4096;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<double> partial(static_cast<size_t>(chunks));
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < chunks; ++c) {
    // 8 independent lanes (one AVX-512 / two AVX2 registers of doubles) so the adds do not wait on each other;
    // the lane order is fixed by this code, not by the thread count.
    constexpr int kLanes = 8;
    double lane[kLanes] = {};
    const int64_t begin = c * kChunk, end = std::min(n, (c + 1) * kChunk);
    int64_t i = begin;
    for (; i + kLanes <= end; i += kLanes)
#pragma omp simd
      for (int j = 0; j < kLanes; ++j) lane[j] += static_cast<double>(x[i + j]) * x[i + j];
    double s = 0.0;
    for (; i < end; ++i) s += static_cast<double>(x[i]) * x[i];
    for (int j = 0; j < kLanes; ++j) s += lane[j];
    partial[static_cast<size_t>(c)] = s;
  }
  double total = 0.0;
  for (double s : partial) total += s;
  return total;
}

template <class T>
void adamw_update_spans(T* param, const T* grad, T* m, T* v, bf16* compute_copy, const FlatSpan* spans, int count,
                        double lr, double beta1, double beta2, double eps, double weight_decay, int64_t step,
                        double grad_scale) {
  for (int s = 0; s < count; ++s) {
    const int64_t o = spans[s].offset, n = spans[s].n;
    adamw_update(param + o, grad + o, m + o, v + o, n, lr, beta1, beta2, eps, spans[s].decay ? weight_decay : 0.0,
                 step, grad_scale);
    if (compute_copy == nullptr) continue;
#pragma omp parallel for schedule(static)
    for (int64_t i = o; i < o + n; ++i) compute_copy[i] = to_bf16(static_cast<float>(param[i]));
  }
}

template <class T>
void sum_squares_spans(const T* x, const FlatSpan* spans, int count, double* out) {
  for (int s = 0; s < count; ++s) out[s] = sum_squares(x + spans[s].offset, spans[s].n);
}

template <class T>
void scale(T* x, int64_t n, double s) {
  const T f = T(s);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) x[i] *= f;
}

template <class T>
void fill(T* x, int64_t n, T value) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) x[i] = value;
}

template <class T>
void add_inplace(T* y, const T* x, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] += x[i];
}

#define ERL_INSTANTIATE(T)                                                                                       \
  template void adamw_update<T>(T*, const T*, T*, T*, int64_t, double, double, double, double, double, int64_t, \
                                double);                                                                         \
  template double sum_squares<T>(const T*, int64_t);                                                             \
  template void adamw_update_spans<T>(T*, const T*, T*, T*, bf16*, const FlatSpan*, int, double, double, double,  \
                                      double, double, int64_t, double);                                          \
  template void sum_squares_spans<T>(const T*, const FlatSpan*, int, double*);                                   \
  template void scale<T>(T*, int64_t, double);                                                                   \
  template void fill<T>(T*, int64_t, T);                                                                         \
  template void add_inplace<T>(T*, const T*, int64_t);
ERL_INSTANTIATE(float)
ERL_INSTANTIATE(double)
#undef ERL_INSTANTIATE

}  // namespace erlangshen::cpu
