// Forward values against direct formulas: GEMM vs a naive triple loop, LayerNorm statistics, AdamW vs its
// update equations, sum of squares.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "runtime/cpu/kernels.h"

namespace erlangshen::cpu {
namespace {

TEST(KernelValues, MatmulMatchesNaiveLoop) {
  const int N = 37, C = 19, OC = 23;
  std::vector<float> x(N * C), w(OC * C), b(OC), out(N * OC);
  for (int i = 0; i < N * C; ++i) x[i] = std::sin(0.1f * i);
  for (int i = 0; i < OC * C; ++i) w[i] = std::cos(0.07f * i);
  for (int i = 0; i < OC; ++i) b[i] = 0.01f * i;
  matmul_forward(out.data(), x.data(), w.data(), b.data(), N, C, OC);
  for (int n = 0; n < N; ++n)
    for (int o = 0; o < OC; ++o) {
      double s = b[o];
      for (int c = 0; c < C; ++c) s += static_cast<double>(x[n * C + c]) * w[o * C + c];
      EXPECT_NEAR(out[n * OC + o], s, 1e-5 * std::max(1.0, std::abs(s)));
    }
}

TEST(KernelValues, AdamWFollowsItsEquations) {
  std::vector<double> p = {1.0, -2.0}, g = {0.5, -0.25}, m = {0.1, 0.2}, v = {0.01, 0.02};
  const double lr = 0.1, b1 = 0.9, b2 = 0.99, eps = 1e-8, wd = 0.1, scale = 0.5;
  const int64_t step = 3;
  std::vector<double> expect(2);
  for (int i = 0; i < 2; ++i) {
    const double gi = g[i] * scale;
    const double mi = b1 * m[i] + (1 - b1) * gi, vi = b2 * v[i] + (1 - b2) * gi * gi;
    const double mhat = mi / (1 - std::pow(b1, step)), vhat = vi / (1 - std::pow(b2, step));
    expect[i] = p[i] - lr * (mhat / (std::sqrt(vhat) + eps) + wd * p[i]);
  }
  adamw_update(p.data(), g.data(), m.data(), v.data(), 2, lr, b1, b2, eps, wd, step, scale);
  EXPECT_NEAR(p[0], expect[0], 1e-12);
  EXPECT_NEAR(p[1], expect[1], 1e-12);
}

TEST(KernelValues, SumSquaresIsExactlyRepeatable) {
  std::vector<float> x(100003);
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.01f * i);
  double direct = 0;
  for (float f : x) direct += static_cast<double>(f) * f;
  const double a = sum_squares(x.data(), static_cast<int64_t>(x.size()));
  EXPECT_NEAR(a, direct, 1e-9 * direct);
  EXPECT_EQ(a, sum_squares(x.data(), static_cast<int64_t>(x.size())));
}

// The float GeLU uses vectorised exp / erf polynomials (runtime/cpu/fast_math.h); compare with libm in double.
TEST(KernelValues, FloatGeluMatchesLibmWithinFloatRounding) {
  const int n = 4001;
  std::vector<float> pre(n), act(n), dpre(n), ones(n, 1.0f);
  for (Activation kind : {Activation::GeluTanh, Activation::GeluExact}) {
    for (int i = 0; i < n; ++i) pre[i] = -10.0f + 20.0f * i / (n - 1);
    std::vector<float> x = pre;
    bias_gelu_forward(act.data(), pre.data(), static_cast<const float*>(nullptr), 1, n, kind);
    bias_gelu_backward(dpre.data(), static_cast<float*>(nullptr), ones.data(), pre.data(), 1, n, kind);
    for (int i = 0; i < n; ++i) {
      const double v = x[i];
      double g, dg;
      if (kind == Activation::GeluTanh) {
        const double k = std::sqrt(2.0 / M_PI), u = k * (v + 0.044715 * v * v * v), th = std::tanh(u);
        g = 0.5 * v * (1 + th);
        dg = 0.5 * (1 + th) + 0.5 * v * (1 - th * th) * k * (1 + 3 * 0.044715 * v * v);
      } else {
        g = 0.5 * v * (1 + std::erf(v / std::sqrt(2.0)));
        dg = 0.5 * (1 + std::erf(v / std::sqrt(2.0))) + v * std::exp(-0.5 * v * v) / std::sqrt(2 * M_PI);
      }
      EXPECT_NEAR(act[i], g, 2e-6 * std::max(1.0, std::abs(g))) << v;
      EXPECT_NEAR(dpre[i], dg, 2e-6 * std::max(1.0, std::abs(dg))) << v;
    }
  }
}

TEST(KernelValues, LayerNormOutputHasUnitStatistics) {
  const int N = 3, C = 64;
  std::vector<float> x(N * C), w(C, 1.0f), b(C, 0.0f), out(N * C), mean(N), rstd(N);
  for (int i = 0; i < N * C; ++i) x[i] = 5.0f + 3.0f * std::sin(0.3f * i);
  layernorm_forward(out.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), N, C, 1e-12);
  for (int n = 0; n < N; ++n) {
    double s = 0, s2 = 0;
    for (int c = 0; c < C; ++c) s += out[n * C + c], s2 += out[n * C + c] * out[n * C + c];
    EXPECT_NEAR(s / C, 0.0, 1e-5);
    EXPECT_NEAR(s2 / C, 1.0, 1e-4);
  }
}

}  // namespace
}  // namespace erlangshen::cpu
