// Vectorisable exp / tanh for the CPU kernels. glibc's expf/tanhf are scalar calls that block
// auto-vectorisation; these are branch-free polynomials that GCC vectorises under `#pragma omp simd`.
//   exp(x) = 2^n * p(r),  n = round(x / ln 2),  r = x - n ln 2 (Cody-Waite split), p = Cephes' degree-6
//   minimax polynomial: relative error < 2 ulp on [-87, 88]. Inputs below -87.3 flush to ~0.
// double keeps the libm functions (gradient checks run in double and need full precision).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

namespace erlangshen::cpu {

inline float exp_fast(float x) {
  x = x < -87.3f ? -87.3f : (x > 88.7f ? 88.7f : x);
  const float n = std::nearbyint(x * 1.44269504088896341f);
  const float r = x - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}
inline double exp_fast(double x) { return std::exp(x); }

// tanh(u) = 1 - 2 / (exp(2u) + 1); |u| > 9 saturates to +-1 exactly (float).
inline float tanh_fast(float u) {
  const float e = exp_fast(2.0f * u);
  return 1.0f - 2.0f / (e + 1.0f);
}
inline double tanh_fast(double u) { return std::tanh(u); }

}  // namespace erlangshen::cpu
