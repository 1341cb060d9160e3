// Dropout (+ residual) with masks drawn from Philox by global element index:
// keep(i) = philox(key, (offset+i)/4)[(offset+i)%4] >= p * 2^32; scale 1/(1-p).
// Backward redraws the mask, or reads it from d.keep_mask when forward stored it there (same bits).
#include <algorithm>

#include "runtime/cpu/kernels.h"
#include "runtime/cpu/philox_batch.h"

namespace erlangshen::cpu {
namespace {

// Calls fn(i0, count, keep) for consecutive chunks of up to 2048 elements (threads take chunks); keep[j] is the
// decision for element i0 + j, from the vectorised Philox (one block gives 4 consecutive global indices) or
// d.keep_mask, as `source` says.
template <class Fn>
void for_each_keep_chunk(int64_t n, const DropoutSpec& d, int64_t index_offset, MaskSource source, Fn&& fn) {
  constexpr int64_t kChunk = 2048;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  const uint32_t threshold = dropout_threshold(d.p);
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < chunks; ++b) {
    uint8_t local[kChunk];
    const int64_t i0 = b * kChunk;
    const int count = static_cast<int>(std::min(kChunk, n - i0));
    const uint8_t* keep =
        keep_decisions(d.key, static_cast<uint64_t>(index_offset + i0), count, threshold, source, d.keep_mask, i0, local);
    fn(i0, count, keep);
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
  const T scale = T(1) / (T(1) - T(d.p));
  const MaskSource source = d.keep_mask ? MaskSource::DrawAndStore : MaskSource::Draw;
  for_each_keep_chunk(n, d, index_offset, source, [&](int64_t i0, int count, const uint8_t* keep) {
    if (resid) {
#pragma omp simd
      for (int j = 0; j < count; ++j) out[i0 + j] = resid[i0 + j] + (keep[j] ? x[i0 + j] * scale : T(0));
    } else {
#pragma omp simd
      for (int j = 0; j < count; ++j) out[i0 + j] = keep[j] ? x[i0 + j] * scale : T(0);
    }
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
  const T scale = T(1) / (T(1) - T(d.p));
  const MaskSource source = d.keep_mask ? MaskSource::Stored : MaskSource::Draw;
  for_each_keep_chunk(n, d, index_offset, source, [&](int64_t i0, int count, const uint8_t* keep) {
#pragma omp simd
    for (int j = 0; j < count; ++j) dx[i0 + j] = keep[j] ? dout[i0 + j] * scale : T(0);
  });
}

template void dropout_residual_forward<float>(float*, const float*, const float*, int64_t, const DropoutSpec&, int64_t);
template void dropout_residual_forward<double>(double*, const double*, const double*, int64_t, const DropoutSpec&, int64_t);
template void dropout_backward<float>(float*, const float*, int64_t, const DropoutSpec&, int64_t);
template void dropout_backward<double>(double*, const double*, int64_t, const DropoutSpec&, int64_t);

}  // namespace erlangshen::cpu
