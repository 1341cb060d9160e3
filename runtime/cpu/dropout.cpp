// Dropout (+ residual) with masks drawn from Philox by global element index, so no mask is stored:
// backward recomputes it. keep(i) = philox(key, (offset+i)/4)[(offset+i)%4] >= p * 2^32; scale 1/(1-p).
#include "runtime/cpu/kernels.h"

namespace erlangshen::cpu {

template <class T>
void dropout_residual_forward(T* out, const T* resid, const T* x, int64_t n, const DropoutSpec& d, int64_t index_offset) {
  if (d.p <= 0.0f) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) out[i] = (resid ? resid[i] : T(0)) + x[i];
    return;
  }
  const uint32_t threshold = dropout_threshold(d.p);
  const T scale = T(1) / (T(1) - T(d.p));
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const bool keep = dropout_keep(d.key, static_cast<uint64_t>(index_offset + i), threshold);
    out[i] = (resid ? resid[i] : T(0)) + (keep ? x[i] * scale : T(0));
  }
}

template <class T>
void dropout_backward(T* dx, const T* dout, int64_t n, const DropoutSpec& d, int64_t index_offset) {
  if (d.p <= 0.0f) {
    if (dx != dout)
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < n; ++i) dx[i] = dout[i];
    return;
  }
  const uint32_t threshold = dropout_threshold(d.p);
  const T scale = T(1) / (T(1) - T(d.p));
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i)
    dx[i] = dropout_keep(d.key, static_cast<uint64_t>(index_offset + i), threshold) ? dout[i] * scale : T(0);
}

template void dropout_residual_forward<float>(float*, const float*, const float*, int64_t, const DropoutSpec&, int64_t);
template void dropout_residual_forward<double>(double*, const double*, const double*, int64_t, const DropoutSpec&, int64_t);
template void dropout_backward<float>(float*, const float*, int64_t, const DropoutSpec&, int64_t);
template void dropout_backward<double>(double*, const double*, int64_t, const DropoutSpec&, int64_t);

}  // namespace erlangshen::cpu
