// Fused bias + GeLU, and tanh (pooler).
//   tanh GeLU:  g(x) = 0.5 x (1 + tanh(u)),  u = k (x + 0.044715 x^3),  k = sqrt(2/pi)
//               g'(x) = 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) k (1 + 3 * 0.044715 x^2)
//   exact GeLU: g(x) = x Phi(x),  g'(x) = Phi(x) + x phi(x)
#include <cmath>

#include "runtime/cpu/fast_math.h"
#include "runtime/cpu/kernels.h"
#include "runtime/cpu/parallel_for.h"

namespace erlangshen::cpu {
namespace {

constexpr double kSqrt2OverPi = 0.7978845608028654;
constexpr double kInvSqrt2 = 0.7071067811865476;
constexpr double kInvSqrt2Pi = 0.3989422804014327;

template <class T>
inline T gelu(T x, Activation kind) {
  if (kind == Activation::GeluTanh) {
    const T u = T(kSqrt2OverPi) * (x + T(0.044715) * x * x * x);
    return T(0.5) * x * (T(1) + tanh_fast(u));
  }
  return T(0.5) * x * (T(1) + erf_fast(x * T(kInvSqrt2)));
}

template <class T>
inline T gelu_grad(T x, Activation kind) {
  if (kind == Activation::GeluTanh) {
    const T u = T(kSqrt2OverPi) * (x + T(0.044715) * x * x * x);
    const T th = tanh_fast(u);
    return T(0.5) * (T(1) + th) + T(0.5) * x * (T(1) - th * th) * T(kSqrt2OverPi) * (T(1) + T(3 * 0.044715) * x * x);
  }
  const T cdf = T(0.5) * (T(1) + erf_fast(x * T(kInvSqrt2)));
  return cdf + x * T(kInvSqrt2Pi) * exp_fast(T(-0.5) * x * x);
}

template <Activation kKind, class T>
void bias_gelu_forward_kind(T* act, T* pre, const T* bias, int N, int C) {
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; ++n) {
    T* p = pre + static_cast<int64_t>(n) * C;
    T* a = act + static_cast<int64_t>(n) * C;
#pragma omp simd
    for (int c = 0; c < C; ++c) {
      const T x = bias ? p[c] + bias[c] : p[c];
      p[c] = x;
      a[c] = gelu(x, kKind);
    }
  }
}

// One pass over (N, C): each thread owns a block of columns, so it can also sum dbias for them without a
// cross-thread reduction (the sum runs over n in order: independent of the thread count).
template <Activation kKind, class T>
void bias_gelu_backward_kind(T* dpre, T* dbias, const T* dact, const T* pre, int N, int C) {
  parallel_blocks(C, 16, [&](int64_t c0, int64_t c1) {
    const int w = static_cast<int>(c1 - c0);
    for (int n = 0; n < N; ++n) {
      const int64_t o = static_cast<int64_t>(n) * C + c0;
      T* d = dpre + o;
      const T* da = dact + o;
      const T* x = pre + o;
#pragma omp simd
      for (int c = 0; c < w; ++c) d[c] = da[c] * gelu_grad(x[c], kKind);
      if (dbias) {
        T* db = dbias + c0;
#pragma omp simd
        for (int c = 0; c < w; ++c) db[c] += d[c];
      }
    }
  });
}

}  // namespace

template <class T>
void bias_gelu_forward(T* act, T* pre, const T* bias, int N, int C, Activation kind) {
  if (kind == Activation::GeluTanh) bias_gelu_forward_kind<Activation::GeluTanh>(act, pre, bias, N, C);
  else bias_gelu_forward_kind<Activation::GeluExact>(act, pre, bias, N, C);
}

template <class T>
void bias_gelu_backward(T* dpre, T* dbias, const T* dact, const T* pre, int N, int C, Activation kind) {
  if (kind == Activation::GeluTanh) bias_gelu_backward_kind<Activation::GeluTanh>(dpre, dbias, dact, pre, N, C);
  else bias_gelu_backward_kind<Activation::GeluExact>(dpre, dbias, dact, pre, N, C);
}

template <class T>
void tanh_forward(T* out, const T* inp, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) out[i] = tanh_fast(inp[i]);
}

template <class T>
void tanh_backward(T* dinp, const T* dout, const T* out, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) dinp[i] = dout[i] * (T(1) - out[i] * out[i]);
}

#define ERL_INSTANTIATE(T)                                                         \
  template void bias_gelu_forward<T>(T*, T*, const T*, int, int, Activation);      \
  template void bias_gelu_backward<T>(T*, T*, const T*, const T*, int, int, Activation); \
  template void tanh_forward<T>(T*, const T*, int64_t);                            \
  template void tanh_backward<T>(T*, const T*, const T*, int64_t);
ERL_INSTANTIATE(float)
ERL_INSTANTIATE(double)
#undef ERL_INSTANTIATE

}  // namespace erlangshen::cpu
