// Dropout (+ residual) with masks drawn from Philox by global element index, so no mask is stored:
// backward recomputes it. keep(i) = philox(key, (offset+i)/4)[(offset+i)%4] >= p * 2^32; scale 1/(1-p).
#include <algorithm>

#include "runtime/cpu/kernels.h"

namespace erlangshen::cpu {
namespace {

// Calls fn(i, keep_i) for i in [0, n), threads on blocks of 1024 elements; one Philox block gives the
// decisions of 4 consecutive global indices.
template <class Fn>
void for_each_keep(int64_t n, const DropoutSpec& d, int64_t index_offset, uint32_t threshold, Fn&& fn) {
  constexpr int64_t kBlock = 1024;
  const int64_t blocks = (n + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t end = std::min(n, (b + 1) * kBlock);
    uint64_t g = static_cast<uint64_t>(index_offset + b * kBlock);
    Philox4 r = philox_at(d.key, g >> 2);
    for (int64_t i = b * kBlock; i < end; ++i, ++g) {
      if ((g & 3) == 0) r = philox_at(d.key, g >> 2);
      fn(i, r.v[g & 3] >= threshold);
    }
  }
}

}  // namespace

template <class T>
void dropout_residual_forward(T* out, const T* resid, const T* x, int64_t n, const DropoutSpec& d, int64_t index_offset) {
  if (d.p <= 0.0f) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) out[i] = (resid ? resid[i] : T(0)) + x[i];
    return;
  }
  const uint32_t threshold = dropout_threshold(d.p);
  const T scale = T(1) / (T(1) - T(d.p));
  for_each_keep(n, d, index_offset, threshold, [&](int64_t i, bool keep) {
    out[i] = (resid ? resid[i] : T(0)) + (keep ? x[i] * scale : T(0));
  });
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
  for_each_keep(n, d, index_offset, threshold, [&](int64_t i, bool keep) { dx[i] = keep ? dout[i] * scale : T(0); });
}

template void dropout_residual_forward<float>(float*, const float*, const float*, int64_t, const DropoutSpec&, int64_t);
template void dropout_residual_forward<double>(double*, const double*, const double*, int64_t, const DropoutSpec&, int64_t);
template void dropout_backward<float>(float*, const float*, int64_t, const DropoutSpec&, int64_t);
template void dropout_backward<double>(double*, const double*, int64_t, const DropoutSpec&, int64_t);

}  // namespace erlangshen::cpu
