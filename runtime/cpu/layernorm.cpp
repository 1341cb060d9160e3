// LayerNorm over the last axis (C), fused: one pass for the statistics, one for the output.
//   y = (x - mean) * rstd * w + b,  rstd = 1 / sqrt(var + eps)
// Backward (xhat = (x - mean) * rstd, g = dy * w):
//   dx = rstd * (g - mean(g) - xhat * mean(g * xhat));  dw += sum_n dy * xhat;  db += sum_n dy
#include <cmath>
#include <vector>

#include "runtime/cpu/kernels.h"
#include "runtime/cpu/parallel_for.h"

namespace erlangshen::cpu {

template <class T>
void layernorm_forward(T* out, T* mean, T* rstd, const T* inp, const T* weight, const T* bias, int N, int C, double eps) {
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; ++n) {
    const T* x = inp + static_cast<int64_t>(n) * C;
    T* y = out + static_cast<int64_t>(n) * C;
    double s = 0.0;
    for (int c = 0; c < C; ++c) s += x[c];
    const double m = s / C;
    double v = 0.0;
    for (int c = 0; c < C; ++c) {
      const double d = x[c] - m;
      v += d * d;
    }
    const double r = 1.0 / std::sqrt(v / C + eps);
    const T mt = static_cast<T>(m), rt = static_cast<T>(r);
    for (int c = 0; c < C; ++c) y[c] = (x[c] - mt) * rt * weight[c] + bias[c];
    mean[n] = mt;
    rstd[n] = rt;
  }
}

template <class T>
void layernorm_backward(T* dinp, T* dweight, T* dbias, const T* dout, const T* inp, const T* weight, const T* mean,
                        const T* rstd, int N, int C) {
  // dinp: rows are independent.
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; ++n) {
    const T* x = inp + static_cast<int64_t>(n) * C;
    const T* dy = dout + static_cast<int64_t>(n) * C;
    T* dx = dinp + static_cast<int64_t>(n) * C;
    const T m = mean[n], r = rstd[n];
    T sum_g = 0, sum_gx = 0;
    for (int c = 0; c < C; ++c) {
      const T g = dy[c] * weight[c];
      sum_g += g;
      sum_gx += g * (x[c] - m) * r;
    }
    const T mg = sum_g / C, mgx = sum_gx / C;
    for (int c = 0; c < C; ++c) {
      const T xhat = (x[c] - m) * r;
      dx[c] += r * (dy[c] * weight[c] - mg - xhat * mgx);
    }
  }
  // dweight, dbias: threads own column blocks, rows summed in order.
  parallel_blocks(C, 16, [&](int64_t c0, int64_t c1) {
    for (int n = 0; n < N; ++n) {
      const T* x = inp + static_cast<int64_t>(n) * C;
      const T* dy = dout + static_cast<int64_t>(n) * C;
      const T m = mean[n], r = rstd[n];
      for (int64_t c = c0; c < c1; ++c) {
        dweight[c] += dy[c] * (x[c] - m) * r;
        dbias[c] += dy[c];
      }
    }
  });
}

template void layernorm_forward<float>(float*, float*, float*, const float*, const float*, const float*, int, int, double);
template void layernorm_forward<double>(double*, double*, double*, const double*, const double*, const double*, int, int,
                                        double);
template void layernorm_backward<float>(float*, float*, float*, const float*, const float*, const float*, const float*,
                                        const float*, int, int);
template void layernorm_backward<double>(double*, double*, double*, const double*, const double*, const double*,
                                         const double*, const double*, int, int);

}  // namespace erlangshen::cpu
