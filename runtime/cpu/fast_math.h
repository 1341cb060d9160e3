// Vectorisable exp / tanh / erf for the CPU kernels. glibc's expf/tanhf are scalar calls that block
// auto-vectorisation; these are branch-free polynomials that GCC vectorises under `#pragma omp simd` — provided
// FP traps are not observable (-fno-trapping-math, set in CMakeLists.txt): otherwise it will not if-convert the
// clamps below and the loops stay scalar ("control flow in loop" under -fopt-info-vec-missed).
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

// erf(x) = x P(x^2) / Q(x^2) on [-4, 4] (clamped outside, where |erf| = 1 to float precision); a rational
// minimax fit (the one Eigen and XLA use for float): absolute error < 5e-7 over the real line.
inline float erf_fast(float x) {
  x = x < -4.0f ? -4.0f : (x > 4.0f ? 4.0f : x);
  const float x2 = x * x;
  float p = -2.72614225801306e-10f;
  p = p * x2 + 2.77068142495902e-08f;
  p = p * x2 - 2.10102402082508e-06f;
  p = p * x2 - 5.69250639462346e-05f;
  p = p * x2 - 7.34990630326855e-04f;
  p = p * x2 - 2.95459980854025e-03f;
  p = p * x2 - 1.60960333262415e-02f;
  float q = -1.45660718464996e-05f;
  q = q * x2 - 2.13374055278905e-04f;
  q = q * x2 - 1.68282697438203e-03f;
  q = q * x2 - 7.37332916720468e-03f;
  q = q * x2 - 1.42647390514189e-02f;
  return x * p / q;
}
inline double erf_fast(double x) { return std::erf(x); }

}  // namespace erlangshen::cpu
