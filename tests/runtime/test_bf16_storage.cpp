// bf16 storage (runtime/bf16.h, runtime/act.h) and the CPU emulation of the ops on it (runtime/ops_bf16.cpp),
// against derivations: IEEE bit patterns for the rounding, and double-precision loops over explicitly rounded
// operands for the ops. These CPU results are the reference the CUDA kernels are tested against
// (tests/gpu/test_cuda_bf16_storage.cpp).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "runtime/ops.h"

namespace erlangshen {
namespace {

uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// bf16 keeps the top 16 bits of the fp32 pattern; the 7 stored mantissa bits of 1.0 are 0, so the bf16 neighbours
// of 1 are 1 - 2^-8 (below, the exponent drops) and 1 + 2^-7 (above).
TEST(Bf16, RoundsToNearestTiesToEven) {
  EXPECT_EQ(to_bf16(1.0f).bits, 0x3f80);
  EXPECT_EQ(to_bf16(-2.0f).bits, 0xc000);
  EXPECT_EQ(to_bf16(0.0f).bits, 0x0000);
  EXPECT_EQ(to_bf16(-0.0f).bits, 0x8000);
  // 1 + 2^-8 lies halfway between 1 (even mantissa) and 1 + 2^-7 (odd): ties to even -> 1
  EXPECT_EQ(to_bf16(1.0f + std::ldexp(1.0f, -8)).bits, 0x3f80);
  // 1 + 3 * 2^-8 lies halfway between 1 + 2^-7 (odd) and 1 + 2^-6 (even) -> 1 + 2^-6
  EXPECT_EQ(to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)).bits, 0x3f82);
  // just above the first tie: rounds up
  EXPECT_EQ(to_bf16(from_bits(0x3f808001u)).bits, 0x3f81);
  // just below: rounds down
  EXPECT_EQ(to_bf16(from_bits(0x3f807fffu)).bits, 0x3f80);
  // the largest finite fp32 rounds up to infinity; infinities and NaN keep their class and sign
  EXPECT_EQ(to_bf16(std::numeric_limits<float>::max()).bits, 0x7f80);
  EXPECT_EQ(to_bf16(-std::numeric_limits<float>::infinity()).bits, 0xff80);
  const bf16 nan = to_bf16(std::numeric_limits<float>::quiet_NaN());
  EXPECT_TRUE(std::isnan(to_float(nan)));
  EXPECT_TRUE(std::isnan(to_float(to_bf16(from_bits(0x7f800001u)))));  // a NaN whose payload sits in the low bits
  // widening is exact: every bf16 pattern comes back bit for bit
  for (uint32_t h = 0; h < 0x10000; h += 7) {
    const float f = to_float(bf16{static_cast<uint16_t>(h)});
    if (!std::isnan(f)) {
      EXPECT_EQ(to_bf16(f).bits, h);
    }
  }
  EXPECT_EQ(bits_of(round_to_bf16(1.0f + std::ldexp(1.0f, -9))), bits_of(1.0f));
}

std::vector<float> wave(size_t n, float a, float b) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = std::sin(a * i + b) * (1.0f + 0.3f * std::cos(0.013f * i));
  return v;
}
std::vector<bf16> to_bf16_vector(const std::vector<float>& v) {
  std::vector<bf16> h(v.size());
  for (size_t i = 0; i < v.size(); ++i) h[i] = to_bf16(v[i]);
  return h;
}

// |got - want| within one bf16 ulp of want: the emulation sums in fp32, the reference in double, so a value
// close to a rounding boundary may land on either neighbour.
void expect_bf16_near(bf16 got, double want, const char* what, size_t i) {
  const double ulp = std::ldexp(1.0, std::ilogb(std::max(std::abs(want), 1e-30)) - 7);
  EXPECT_LE(std::abs(to_float(got) - want), ulp * 1.0001 + 1e-6) << what << " [" << i << "]";
}

// out = round(x16 @ round(W)^T + b): the weight is rounded because the op touches bf16 storage (act.h); the bias
// enters as its bf16 value when the output is bf16 (the GEMM epilogue reads a bias of the output's type), as given
// when the output is fp32.
TEST(Bf16Ops, MatmulForwardRoundsOperandsAndOutputOnce) {
  const int N = 9, C = 13, OC = 7;
  const std::vector<float> x = wave(N * C, 0.37f, 0.1f), w = wave(OC * C, 0.23f, 0.7f), b = wave(OC, 0.9f, 0.2f);
  const std::vector<bf16> x16 = to_bf16_vector(x);
  std::vector<bf16> out16(N * OC);
  std::vector<float> out32(N * OC);
  const Exec cpu;
  ops::matmul_forward(cpu, Act<float>::half(out16.data()), Act<const float>::half(x16.data()), w.data(), b.data(), N, C,
                      OC);
  ops::matmul_forward(cpu, out32.data(), Act<const float>::half(x16.data()), w.data(), b.data(), N, C, OC);
  for (int n = 0; n < N; ++n)
    for (int o = 0; o < OC; ++o) {
      double s = 0.0;
      for (int c = 0; c < C; ++c) s += double(to_float(x16[n * C + c])) * round_to_bf16(w[o * C + c]);
      expect_bf16_near(out16[n * OC + o], s + round_to_bf16(b[o]), "bf16 out", n * OC + o);
      EXPECT_NEAR(out32[n * OC + o], s + b[o], 1e-5 * std::max(1.0, std::abs(s + b[o]))) << "fp32 out";
    }
}

// dinp = round(round(dout) @ round(W)), dW += round(dout)^T @ x16, db += sum of dout as stored (fp32 here).
TEST(Bf16Ops, MatmulBackwardUsesRoundedOperandsAndStoredBiasGradient) {
  const int N = 11, C = 6, OC = 5;
  const std::vector<float> x = wave(N * C, 0.31f, 0.4f), w = wave(OC * C, 0.17f, 0.3f),
                           dout = wave(N * OC, 0.41f, 1.1f);
  const std::vector<bf16> x16 = to_bf16_vector(x);
  std::vector<bf16> dinp16(N * C);
  std::vector<float> dw(OC * C, 0.5f), db(OC, -0.25f);
  ops::matmul_backward(Exec{}, Act<float>::half(dinp16.data()), dw.data(), db.data(), dout.data(),
                       Act<const float>::half(x16.data()), w.data(), N, C, OC);
  for (int n = 0; n < N; ++n)
    for (int c = 0; c < C; ++c) {
      double s = 0;
      for (int o = 0; o < OC; ++o) s += double(round_to_bf16(dout[n * OC + o])) * round_to_bf16(w[o * C + c]);
      expect_bf16_near(dinp16[n * C + c], s, "dinp", n * C + c);
    }
  for (int o = 0; o < OC; ++o) {
    double sb = -0.25;
    for (int n = 0; n < N; ++n) sb += dout[n * OC + o];
    EXPECT_NEAR(db[o], sb, 1e-5) << "dbias sums the fp32 dout as stored";
    for (int c = 0; c < C; ++c) {
      double s = 0.5;
      for (int n = 0; n < N; ++n) s += double(round_to_bf16(dout[n * OC + o])) * to_float(x16[n * C + c]);
      EXPECT_NEAR(dw[o * C + c], s, 1e-5 * std::max(1.0, std::abs(s))) << "dweight";
    }
  }
}

// pre = round(x16 W^T + b16), act = round(gelu(x16 W^T + b16)) from the unrounded pre-activation; b16 the bias's
// bf16 value (a bf16 output's epilogue bias, as above).
TEST(Bf16Ops, FusedFfnInStoresRoundedPreAndActivation) {
  const int N = 8, C = 10, OC = 12;
  const std::vector<float> x = wave(N * C, 0.29f, 0.5f), w = wave(OC * C, 0.19f, 0.9f), b = wave(OC, 0.7f, 0.0f);
  const std::vector<bf16> x16 = to_bf16_vector(x);
  std::vector<bf16> pre(N * OC), act(N * OC);
  ops::matmul_bias_gelu_forward(Exec{}, Act<float>::half(act.data()), Act<float>::half(pre.data()),
                                Act<const float>::half(x16.data()), w.data(), b.data(), N, C, OC, Activation::GeluTanh);
  for (int i = 0; i < N * OC; ++i) {
    const int n = i / OC, o = i % OC;
    double s = round_to_bf16(b[o]);
    for (int c = 0; c < C; ++c) s += double(to_float(x16[n * C + c])) * round_to_bf16(w[o * C + c]);
    const double g = 0.5 * s * (1 + std::tanh(std::sqrt(2 / M_PI) * (s + 0.044715 * s * s * s)));
    expect_bf16_near(pre[i], s, "pre", i);
    expect_bf16_near(act[i], g, "act", i);
  }
}

// out = round(LN(x)); the statistics stay fp32 and equal those of the fp32 op.
TEST(Bf16Ops, LayerNormRoundsItsOutputOnly) {
  const int N = 5, C = 33;
  const std::vector<float> x = wave(N * C, 0.53f, 0.2f), w = wave(C, 0.3f, 1.0f), b = wave(C, 0.4f, 2.0f);
  std::vector<bf16> out16(N * C);
  std::vector<float> out32(N * C), mean16(N), rstd16(N), mean32(N), rstd32(N);
  ops::layernorm_forward(Exec{}, Act<float>::half(out16.data()), mean16.data(), rstd16.data(), x.data(), w.data(),
                         b.data(), N, C, 1e-5);
  ops::layernorm_forward(Exec{}, out32.data(), mean32.data(), rstd32.data(), x.data(), w.data(), b.data(), N, C, 1e-5);
  EXPECT_EQ(mean16, mean32);
  EXPECT_EQ(rstd16, rstd32);
  for (int i = 0; i < N * C; ++i) EXPECT_EQ(out16[i].bits, to_bf16(out32[i]).bits) << i;
}

// A bf16 residual stream (train.residual=bf16): h = round(resid + dropout(in)) from the stored resid, the sum formed
// in fp32 as the fp32 op forms it; a LayerNorm reading h (forward and backward) reads the stored values exactly, so
// it equals the fp32 op on the widened h. The fused op equals the two ops.
TEST(Bf16Ops, ResidualStreamRoundsEachSumOnceAndLayerNormReadsItAsStored) {
  const int N = 6, C = 20;
  const int64_t n = int64_t(N) * C;
  const std::vector<bf16> resid = to_bf16_vector(wave(n, 0.37f, 3.0f));
  const std::vector<float> in = wave(n, 0.71f, 0.9f), w = wave(C, 0.3f, 1.0f), b = wave(C, 0.4f, 2.0f);
  DropoutSpec d;
  d.p = 0.25f;
  d.key = derive_key(5, RngPurpose::HiddenDropout, 1, 2, 0);
  std::vector<bf16> h(n);
  ops::dropout_residual_forward(Exec{}, Act<float>::half(h.data()), Act<const float>::half(resid.data()), in.data(), n,
                                d, 8);
  // the mask of the fp32 op (on ones), then the sum in fp32 and one rounding
  std::vector<float> ones(n, 1.0f), mask(n);
  ops::dropout_residual_forward(Exec{}, mask.data(), static_cast<const float*>(nullptr), ones.data(), n, d, 8);
  int dropped = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float kept = mask[i] == 0.0f ? 0.0f : in[i] * (1.0f / (1.0f - d.p));
    dropped += mask[i] == 0.0f;
    EXPECT_EQ(h[i].bits, to_bf16(to_float(resid[i]) + kept).bits) << i;
  }
  EXPECT_GT(dropped, 0);
  EXPECT_LT(dropped, n / 2);
  // LayerNorm forward and backward on the stored h == the fp32 ops on its widened values
  std::vector<float> hw(n);
  for (int64_t i = 0; i < n; ++i) hw[i] = to_float(h[i]);
  std::vector<float> y16(n), y32(n), mean16(N), rstd16(N), mean32(N), rstd32(N);
  ops::layernorm_forward(Exec{}, y16.data(), mean16.data(), rstd16.data(), Act<const float>::half(h.data()), w.data(),
                         b.data(), N, C, 1e-5);
  ops::layernorm_forward(Exec{}, y32.data(), mean32.data(), rstd32.data(), hw.data(), w.data(), b.data(), N, C, 1e-5);
  EXPECT_EQ(y16, y32);
  EXPECT_EQ(rstd16, rstd32);
  const std::vector<float> dy = wave(n, 0.29f, 0.5f);
  std::vector<float> dx16(n, 0.5f), dx32(n, 0.5f), dw16(C, 0.0f), dw32(C, 0.0f), db16(C, 0.0f), db32(C, 0.0f);
  ops::layernorm_backward(Exec{}, dx16.data(), dw16.data(), db16.data(), dy.data(), Act<const float>::half(h.data()),
                          w.data(), mean16.data(), rstd16.data(), N, C);
  ops::layernorm_backward(Exec{}, dx32.data(), dw32.data(), db32.data(), dy.data(), hw.data(), w.data(), mean32.data(),
                          rstd32.data(), N, C);
  EXPECT_EQ(dx16, dx32);
  EXPECT_EQ(dw16, dw32);
  EXPECT_EQ(db16, db32);
  // the fused residual add + LayerNorm: the same h and LayerNorm
  std::vector<bf16> h2(n);
  std::vector<float> y2(n), mean2(N), rstd2(N);
  ops::dropout_residual_layernorm_forward(Exec{}, Act<float>::half(h2.data()), y2.data(), mean2.data(), rstd2.data(),
                                          Act<const float>::half(resid.data()), in.data(), w.data(), b.data(), N, C,
                                          1e-5, d, 8);
  for (int64_t i = 0; i < n; ++i) EXPECT_EQ(h2[i].bits, h[i].bits) << i;
  EXPECT_EQ(y2, y32);
  // the residual stream has one storage: an fp32 resid into a bf16 h is refused
  const std::vector<float> resid32 = wave(n, 0.37f, 3.0f);
  EXPECT_THROW(ops::dropout_residual_forward(Exec{}, Act<float>::half(h.data()), resid32.data(), in.data(), n, d, 8),
               Error);
}

// dpre = round(dact16 * gelu'(pre16)) in place over dact; dbias sums the rounded dpre (as stored).
TEST(Bf16Ops, GeluBackwardInPlaceAndBiasGradientOfStoredValues) {
  const int N = 7, C = 9;
  const std::vector<bf16> pre = to_bf16_vector(wave(N * C, 0.61f, 0.3f));
  std::vector<bf16> d = to_bf16_vector(wave(N * C, 0.47f, 0.8f));
  const std::vector<bf16> dact = d;
  std::vector<float> db(C, 0.0f);
  ops::bias_gelu_backward(Exec{}, Act<float>::half(d.data()), db.data(), Act<const float>::half(d.data()),
                          Act<const float>::half(pre.data()), N, C, Activation::GeluTanh);
  std::vector<double> sum(C, 0.0);
  for (int i = 0; i < N * C; ++i) {
    const double x = to_float(pre[i]), k = std::sqrt(2 / M_PI), u = k * (x + 0.044715 * x * x * x);
    const double grad =
        0.5 * (1 + std::tanh(u)) + 0.5 * x * (1 - std::tanh(u) * std::tanh(u)) * k * (1 + 3 * 0.044715 * x * x);
    expect_bf16_near(d[i], to_float(dact[i]) * grad, "dpre", i);
    sum[i % C] += to_float(d[i]);
  }
  for (int c = 0; c < C; ++c) EXPECT_NEAR(db[c], sum[c], 1e-6 * std::max(1.0, std::abs(sum[c])));
}

// The MLP's output layer backward through its GeLU: dpre = round((dout16 @ round(W)) * gelu'(pre16)), rounded once,
// i.e. to the bf16 nearest the exact value (within half an ulp; rounding the product first, as
// matmul_backward + bias_gelu_backward would, lands a full ulp off on some elements); dW += dout16^T act16,
// db += sum dout, dbias_pre += sum of dpre as stored.
TEST(Bf16Ops, MlpOutputBackwardRoundsGeluGradientOnce) {
  const int N = 9, F = 12, C = 7;  // pre, act, dpre (N, F); dout (N, C); W (C, F)
  const std::vector<bf16> pre = to_bf16_vector(wave(N * F, 0.61f, 0.3f)),
                          act = to_bf16_vector(wave(N * F, 0.37f, 0.2f)),
                          dout = to_bf16_vector(wave(N * C, 0.47f, 0.8f));
  const std::vector<float> w = wave(C * F, 0.23f, 0.7f);
  std::vector<bf16> dpre(N * F);
  std::vector<float> dw(C * F, 0.5f), db(C, -0.25f), dbp(F, 0.125f);
  ops::matmul_gelu_backward(Exec{}, Act<float>::half(dpre.data()), dw.data(), db.data(), dbp.data(),
                            Act<const float>::half(dout.data()), Act<const float>::half(act.data()), w.data(),
                            Act<const float>::half(pre.data()), N, F, C, Activation::GeluTanh);
  std::vector<double> sum(F, 0.125);
  for (int i = 0; i < N * F; ++i) {
    const int n = i / F, f = i % F;
    double dact = 0;
    for (int o = 0; o < C; ++o) dact += double(to_float(dout[n * C + o])) * round_to_bf16(w[o * F + f]);
    const double x = to_float(pre[i]), k = std::sqrt(2 / M_PI), u = k * (x + 0.044715 * x * x * x);
    const double th = std::tanh(u);
    const double want = dact * (0.5 * (1 + th) + 0.5 * x * (1 - th * th) * k * (1 + 3 * 0.044715 * x * x));
    const double half_ulp = std::ldexp(1.0, std::ilogb(std::max(std::abs(want), 1e-30)) - 8);
    EXPECT_LE(std::abs(to_float(dpre[i]) - want), half_ulp * 1.001 + 1e-6 * std::abs(want)) << "dpre [" << i << "]";
    sum[f] += to_float(dpre[i]);
  }
  for (int f = 0; f < F; ++f) EXPECT_NEAR(dbp[f], sum[f], 1e-6 * std::max(1.0, std::abs(sum[f]))) << "dbias_pre";
  for (int o = 0; o < C; ++o) {
    double sb = -0.25;
    for (int n = 0; n < N; ++n) sb += to_float(dout[n * C + o]);
    EXPECT_NEAR(db[o], sb, 1e-5) << "dbias";
    for (int f = 0; f < F; ++f) {
      double s = 0.5;
      for (int n = 0; n < N; ++n) s += double(to_float(dout[n * C + o])) * to_float(act[n * F + f]);
      EXPECT_NEAR(dw[o * F + f], s, 1e-5 * std::max(1.0, std::abs(s))) << "dweight";
    }
  }
}

// Element (b, t, part, h, d) of a bf16 qkv (B, T, 3, NH, HS), as a double.
double qkv_at(const std::vector<bf16>& qkv, int T, int NH, int HS, int b, int t, int part, int h, int d) {
  return double(to_float(qkv[((size_t(b) * T + t) * 3 + part) * NH * HS + size_t(h) * HS + d]));
}

// Row (b, h, i) of softmax(q k^T / sqrt(HS)) with padded keys masked, in double from the bf16 q and k; with
// bf16_scores the scores rounded to bf16 first (as the bf16-storage attention forms them).
std::vector<double> softmax_row(const std::vector<bf16>& qkv, const std::vector<uint8_t>& valid, int T, int NH,
                                int HS, int b, int h, int i, bool bf16_scores = false) {
  std::vector<double> p(T);
  double mx = -1e300, sum = 0;
  for (int j = 0; j < T; ++j) {
    double sc = 0;
    for (int d = 0; d < HS; ++d) sc += qkv_at(qkv, T, NH, HS, b, i, 0, h, d) * qkv_at(qkv, T, NH, HS, b, j, 1, h, d);
    sc /= std::sqrt(double(HS));
    if (bf16_scores) sc = round_to_bf16(static_cast<float>(sc));
    p[j] = valid[b * T + j] ? sc : -1e300;
    mx = std::max(mx, p[j]);
  }
  for (int j = 0; j < T; ++j) sum += (p[j] = valid[b * T + j] ? std::exp(p[j] - mx) : 0.0);
  for (double& e : p) e /= sum;
  return p;
}

// out = round(softmax(q k^T / sqrt(HS), padded keys masked) v) from bf16 q, k, v, against a double loop; the
// backward's dV = P^T dO (dropout off) rounded into the bf16 dqkv.
TEST(Bf16Ops, AttentionReadsBf16QkvAndRoundsItsOutputs) {
  const int B = 2, T = 5, NH = 2, HS = 4, C = NH * HS;
  const cpu::AttentionShape shape{B, T, NH, HS};
  const std::vector<bf16> qkv = to_bf16_vector(wave(B * T * 3 * C, 0.77f, 0.3f));
  const std::vector<bf16> dout = to_bf16_vector(wave(B * T * C, 0.59f, 0.6f));
  const std::vector<uint8_t> valid = {1, 1, 1, 1, 0, 1, 1, 1, 1, 1};  // sample 0's last key is padding
  std::vector<float> probs(B * NH * T * T), scratch(ops::attention_scratch_elems(Exec{}, shape));
  std::vector<bf16> out(B * T * C), dqkv(B * T * 3 * C);
  const DropoutSpec off{};
  ops::attention_forward(Exec{}, Act<float>::half(out.data()), probs.data(), scratch.data(),
                         Act<const float>::half(qkv.data()), valid.data(), shape, off);
  ops::attention_backward(Exec{}, Act<float>::half(dqkv.data()), scratch.data(), Act<const float>::half(dout.data()),
                          Act<const float>::half(qkv.data()), probs.data(), valid.data(), shape, off);
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < NH; ++h)
      for (int i = 0; i < T; ++i) {
        const std::vector<double> p = softmax_row(qkv, valid, T, NH, HS, b, h, i);
        for (int d = 0; d < HS; ++d) {
          double o = 0;
          for (int j = 0; j < T; ++j) o += p[j] * qkv_at(qkv, T, NH, HS, b, j, 2, h, d);
          expect_bf16_near(out[(b * T + i) * C + h * HS + d], o, "out", (b * T + i) * C + h * HS + d);
        }
      }
  // dV[b, j, h, d] = sum_i P[b, h, i, j] dO[b, i, h, d], P as saved (fp32)
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < NH; ++h)
      for (int j = 0; j < T; ++j)
        for (int d = 0; d < HS; ++d) {
          double dv = 0;
          for (int i = 0; i < T; ++i)
            dv += double(probs[((b * NH + h) * T + i) * T + j]) * to_float(dout[(b * T + i) * C + h * HS + d]);
          const size_t k = ((b * T + j) * 3 + 2) * C + h * HS + d;
          expect_bf16_near(dqkv[k], dv, "dV", k);
        }
}

// probs in bf16 storage (the model's [act] probabilities): the scores rounded to bf16 as the QK^T GEMM's output,
// each probability the bf16 nearest the exact softmax of those (half an ulp), and the forward's output and the
// backward's dV formed from the stored probabilities.
TEST(Bf16Ops, AttentionStoresProbabilitiesRoundedOnce) {
  const int B = 2, T = 6, NH = 2, HS = 4, C = NH * HS;
  const cpu::AttentionShape shape{B, T, NH, HS};
  const std::vector<bf16> qkv = to_bf16_vector(wave(B * T * 3 * C, 0.71f, 0.9f));
  const std::vector<bf16> dout = to_bf16_vector(wave(B * T * C, 0.53f, 0.4f));
  const std::vector<uint8_t> valid = {1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1};  // sample 0's last key is padding
  std::vector<float> scratch(ops::attention_scratch_elems(Exec{}, shape));
  std::vector<bf16> probs(B * NH * T * T), out(B * T * C), dqkv(B * T * 3 * C);
  const DropoutSpec off{};
  ops::attention_forward(Exec{}, Act<float>::half(out.data()), Act<float>::half(probs.data()), scratch.data(),
                         Act<const float>::half(qkv.data()), valid.data(), shape, off);
  ops::attention_backward(Exec{}, Act<float>::half(dqkv.data()), scratch.data(), Act<const float>::half(dout.data()),
                          Act<const float>::half(qkv.data()), Act<const float>::half(probs.data()), valid.data(), shape,
                          off);
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < NH; ++h)
      for (int i = 0; i < T; ++i) {
        const std::vector<double> p = softmax_row(qkv, valid, T, NH, HS, b, h, i, true);
        const bf16* stored = &probs[((b * NH + h) * T + i) * T];
        for (int j = 0; j < T; ++j) {
          const double want = p[j], half_ulp = std::ldexp(1.0, std::ilogb(std::max(want, 1e-30)) - 8);
          EXPECT_LE(std::abs(to_float(stored[j]) - want), half_ulp * 1.001 + 1e-7) << "P[" << b << h << i << j << "]";
        }
        for (int d = 0; d < HS; ++d) {
          double o = 0;
          for (int j = 0; j < T; ++j) o += double(to_float(stored[j])) * qkv_at(qkv, T, NH, HS, b, j, 2, h, d);
          expect_bf16_near(out[(b * T + i) * C + h * HS + d], o, "out", (b * T + i) * C + h * HS + d);
        }
      }
  for (int b = 0; b < B; ++b)  // dV[b, j, h, d] = sum_i P16[b, h, i, j] dO[b, i, h, d]
    for (int h = 0; h < NH; ++h)
      for (int j = 0; j < T; ++j)
        for (int d = 0; d < HS; ++d) {
          double dv = 0;
          for (int i = 0; i < T; ++i)
            dv += double(to_float(probs[((b * NH + h) * T + i) * T + j])) *
                  to_float(dout[(b * T + i) * C + h * HS + d]);
          const size_t k = ((b * T + j) * 3 + 2) * C + h * HS + d;
          expect_bf16_near(dqkv[k], dv, "dV", k);
        }
}

TEST(Bf16Ops, StorageSettingAndRefusals) {
  EXPECT_EQ(parse_activation_storage("bf16"), ActivationStorage::BF16);
  EXPECT_EQ(parse_activation_storage("fp32"), ActivationStorage::FP32);
  EXPECT_THROW(parse_activation_storage("fp16"), Error);
  // double models have no bf16 storage; accumulating into bf16 is refused
  std::vector<double> wd(4), outd(4);
  std::vector<bf16> h(4);
  EXPECT_THROW(ops::matmul_forward(Exec{}, outd.data(), Act<const double>::half(h.data()), wd.data(),
                                   static_cast<const double*>(nullptr), 2, 2, 2),
               Error);
  std::vector<float> w(4);
  EXPECT_THROW(ops::matmul_forward(Exec{}, Act<float>::half(h.data()), Act<const float>::half(h.data()), w.data(),
                                   static_cast<const float*>(nullptr), 2, 2, 2, true),
               Error);
}

}  // namespace
}  // namespace erlangshen
