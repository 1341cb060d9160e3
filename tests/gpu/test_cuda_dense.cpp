// CUDA vs CPU: GEMMs (fp32 parity path and bf16 math), LayerNorm, bias+GeLU, tanh, AdamW and vector reductions.
#include <cstring>

#include "tests/gpu/gpu_test_util.h"

namespace erlangshen::testing {
namespace {

using cuda::MathMode;

struct MatmulCase {
  int N, C, OC;
};

class CudaMatmul : public CudaTest {
 protected:
  // Runs forward (with bias, then accumulating) and backward on both backends; compares with `rtol`.
  void check(const MatmulCase& k, double rtol) {
    const auto inp = randn(size_t(k.N) * k.C, 1), w = randn(size_t(k.OC) * k.C, 2, 0.05f), b = randn(k.OC, 3),
               dout = randn(size_t(k.N) * k.OC, 4), out0 = randn(size_t(k.N) * k.OC, 5),
               dinp0 = randn(size_t(k.N) * k.C, 6), dw0 = randn(w.size(), 7), db0 = randn(k.OC, 8);
    // forward, overwrite with bias
    std::vector<float> out_c(out0.size());
    ops::matmul_forward(cpu(), out_c.data(), inp.data(), w.data(), b.data(), k.N, k.C, k.OC);
    Dev<float> d_inp(inp), d_w(w), d_b(b), d_out(out0.size()), d_dout(dout);
    ops::matmul_forward(gpu(), d_out.get(), d_inp.get(), d_w.get(), d_b.get(), k.N, k.C, k.OC);
    EXPECT_TRUE(close(d_out.host(), out_c, rtol)) << "forward with bias";
    // forward, accumulate, no bias
    std::vector<float> acc_c = out0;
    ops::matmul_forward(cpu(), acc_c.data(), inp.data(), w.data(), static_cast<const float*>(nullptr), k.N, k.C, k.OC,
                        true);
    Dev<float> d_acc(out0);
    ops::matmul_forward(gpu(), d_acc.get(), d_inp.get(), d_w.get(), static_cast<const float*>(nullptr), k.N, k.C,
                        k.OC, true);
    EXPECT_TRUE(close(d_acc.host(), acc_c, rtol)) << "forward accumulate";
    // backward: dinp accumulates, dweight and dbias accumulate
    std::vector<float> dinp_c = dinp0, dw_c = dw0, db_c = db0;
    ops::matmul_backward(cpu(), dinp_c.data(), dw_c.data(), db_c.data(), dout.data(), inp.data(), w.data(), k.N, k.C,
                         k.OC, true);
    Dev<float> d_dinp(dinp0), d_dw(dw0), d_db(db0);
    ops::matmul_backward(gpu(), d_dinp.get(), d_dw.get(), d_db.get(), d_dout.get(), d_inp.get(), d_w.get(), k.N, k.C,
                         k.OC, true);
    EXPECT_TRUE(close(d_dinp.host(), dinp_c, rtol)) << "dinp";
    EXPECT_TRUE(close(d_dw.host(), dw_c, rtol)) << "dweight";
    EXPECT_TRUE(close(d_db.host(), db_c, kFp32Rtol)) << "dbias (fp32 column sum in every math mode)";
  }
};

TEST_F(CudaMatmul, Fp32MatchesCpu) {
  for (const MatmulCase& k : {MatmulCase{64, 128, 96}, MatmulCase{37, 53, 29}, MatmulCase{512, 256, 1024}}) {
    SCOPED_TRACE(::testing::Message() << "N=" << k.N << " C=" << k.C << " OC=" << k.OC);
    check(k, kFp32Rtol);
  }
}

// bf16 math: inputs rounded to 8 significant bits (relative error 2^-9 each), products accumulated in fp32. A dot
// product of K terms then carries a relative error of about 2^-8 / sqrt(K) * sqrt(K) ~ 4e-3 of its natural scale
// (sum of |a_k b_k|); against the element plus the tensor's largest magnitude, 1e-2 leaves a factor ~2.5 margin.
TEST_F(CudaMatmul, Bf16WithinBf16Tolerance) {
  ctx_->set_math(MathMode::BF16);
  // The odd shape has no bf16 cuBLASLt algorithm for its leading dimensions on some GPUs: gemm() then falls
  // back to cuBLASLt's own rounding of the fp32 operands, with the same arithmetic.
  for (const MatmulCase& k : {MatmulCase{256, 512, 384}, MatmulCase{37, 53, 29}}) {
    SCOPED_TRACE(::testing::Message() << "N=" << k.N << " C=" << k.C << " OC=" << k.OC);
    check(k, 1e-2);
  }
}

TEST_F(CudaMatmul, FusedBiasGeluMatchesUnfused) {
  const int N = 96, C = 128, OC = 256;
  const auto inp = randn(size_t(N) * C, 11), w = randn(size_t(OC) * C, 12, 0.1f), b = randn(OC, 13);
  std::vector<float> pre_c(size_t(N) * OC), act_c(pre_c.size());
  ops::matmul_forward(cpu(), pre_c.data(), inp.data(), w.data(), static_cast<const float*>(nullptr), N, C, OC);
  ops::bias_gelu_forward(cpu(), act_c.data(), pre_c.data(), b.data(), N, OC, Activation::GeluTanh);
  Dev<float> d_inp(inp), d_w(w), d_b(b), d_pre(pre_c.size()), d_act(act_c.size());
  cuda::matmul_bias_gelu_forward(cuda::Launch(ctx_->stream(), ctx_.get()), d_act, d_pre, d_inp, d_w, d_b, N, C, OC);
  EXPECT_TRUE(close(d_pre.host(), pre_c, kFp32Rtol)) << "pre-activation";
  // cuBLASLt's GeLU epilogue evaluates tanh with its own approximation (a few ulp of fp32): 1e-5 of the tensor
  // scale is kept, per-element relative error may reach ~1e-5 near zero crossings, hence 2e-5.
  EXPECT_TRUE(close(d_act.host(), act_c, 2e-5)) << "activation";
}

TEST_F(CudaTest, LayerNormForwardBackward) {
  for (int C : {64, 768, 2048, 2560}) {
    SCOPED_TRACE(::testing::Message() << "C=" << C);
    const int N = 67;
    const auto x = randn(size_t(N) * C, 21, 2.0f, 0.5f), w = randn(C, 22, 0.2f, 1.0f), b = randn(C, 23),
               dy = randn(x.size(), 24), dx0 = randn(x.size(), 25), dw0 = randn(C, 26), db0 = randn(C, 27);
    std::vector<float> y_c(x.size()), mean_c(N), rstd_c(N), dx_c = dx0, dw_c = dw0, db_c = db0;
    ops::layernorm_forward(cpu(), y_c.data(), mean_c.data(), rstd_c.data(), x.data(), w.data(), b.data(), N, C, 1e-12);
    ops::layernorm_backward(cpu(), dx_c.data(), dw_c.data(), db_c.data(), dy.data(), x.data(), w.data(),
                            mean_c.data(), rstd_c.data(), N, C);
    Dev<float> d_x(x), d_w(w), d_b(b), d_y(x.size()), d_mean(N), d_rstd(N), d_dy(dy), d_dx(dx0), d_dw(dw0), d_db(db0);
    ops::layernorm_forward(gpu(), d_y.get(), d_mean.get(), d_rstd.get(), d_x.get(), d_w.get(), d_b.get(), N, C, 1e-12);
    ops::layernorm_backward(gpu(), d_dx.get(), d_dw.get(), d_db.get(), d_dy.get(), d_x.get(), d_w.get(), d_mean.get(),
                            d_rstd.get(), N, C);
    EXPECT_TRUE(close(d_y.host(), y_c, kFp32Rtol)) << "y";
    EXPECT_TRUE(close(d_mean.host(), mean_c, kFp32Rtol)) << "mean";
    EXPECT_TRUE(close(d_rstd.host(), rstd_c, kFp32Rtol)) << "rstd";
    EXPECT_TRUE(close(d_dx.host(), dx_c, kFp32Rtol)) << "dx";
    EXPECT_TRUE(close(d_dw.host(), dw_c, kFp32Rtol)) << "dw";
    EXPECT_TRUE(close(d_db.host(), db_c, kFp32Rtol)) << "db";
    // dw and db from the one-pass kernel (aligned dy and x) and from two column sums (dy and x one float off
    // alignment): the same partition and order, the same bits.
    Dev<float> d_dy1(one_float_off(dy)), d_x1(one_float_off(x)), d_dx1(dx0), d_dw1(dw0), d_db1(db0);
    ops::layernorm_backward(gpu(), d_dx1.get(), d_dw1.get(), d_db1.get(), d_dy1.get() + 1, d_x1.get() + 1, d_w.get(),
                            d_mean.get(), d_rstd.get(), N, C);
    EXPECT_TRUE(bit_equal(d_dw1.host(), d_dw.host())) << "dw: one pass vs two column sums";
    EXPECT_TRUE(bit_equal(d_db1.host(), d_db.host())) << "db: one pass vs two column sums";
  }
}

TEST_F(CudaTest, BiasGeluAndTanhForwardBackward) {
  const int N = 129, C = 300;
  for (Activation kind : {Activation::GeluTanh, Activation::GeluExact}) {
    SCOPED_TRACE(kind == Activation::GeluTanh ? "gelu tanh" : "gelu exact");
    const auto pre0 = randn(size_t(N) * C, 31, 2.0f), bias = randn(C, 32), dact = randn(pre0.size(), 33),
               db0 = randn(C, 34);
    std::vector<float> pre_c = pre0, act_c(pre0.size()), dpre_c(pre0.size()), db_c = db0;
    ops::bias_gelu_forward(cpu(), act_c.data(), pre_c.data(), bias.data(), N, C, kind);
    ops::bias_gelu_backward(cpu(), dpre_c.data(), db_c.data(), dact.data(), pre_c.data(), N, C, kind);
    Dev<float> d_pre(pre0), d_bias(bias), d_act(pre0.size()), d_dact(dact), d_dpre(pre0.size()), d_db(db0);
    ops::bias_gelu_forward(gpu(), d_act.get(), d_pre.get(), d_bias.get(), N, C, kind);
    ops::bias_gelu_backward(gpu(), d_dpre.get(), d_db.get(), d_dact.get(), d_pre.get(), N, C, kind);
    EXPECT_TRUE(close(d_pre.host(), pre_c, kFp32Rtol));
    EXPECT_TRUE(close(d_act.host(), act_c, kFp32Rtol));
    EXPECT_TRUE(close(d_dpre.host(), dpre_c, kFp32Rtol));
    EXPECT_TRUE(close(d_db.host(), db_c, kFp32Rtol));
    // The pass that writes dpre and sums it, 4 columns a thread (aligned tensors) and 1 (dact one float off
    // alignment): the same element formula, the same partition and order of the sums, the same bits.
    Dev<float> d_dact1(one_float_off(dact)), d_dpre1(pre0.size()), d_db1(db0);
    ops::bias_gelu_backward(gpu(), d_dpre1.get(), d_db1.get(), d_dact1.get() + 1, d_pre.get(), N, C, kind);
    EXPECT_TRUE(bit_equal(d_dpre1.host(), d_dpre.host())) << "dpre: 4-column vs 1-column pass";
    EXPECT_TRUE(bit_equal(d_db1.host(), d_db.host())) << "dbias: 4-column vs 1-column pass";
    // ... and the two-pass route: dpre alone (the element-wise kernel), then its column sum (matmul_backward's bias
    // gradient, colsum_add on the stored rows)
    Dev<float> d_dpre2(pre0.size()), d_db2(db0), d_inp8(size_t(N) * 8), d_w8(size_t(C) * 8);
    ops::bias_gelu_backward(gpu(), d_dpre2.get(), static_cast<float*>(nullptr), d_dact.get(), d_pre.get(), N, C, kind);
    ops::matmul_backward(gpu(), static_cast<float*>(nullptr), static_cast<float*>(nullptr), d_db2.get(), d_dpre2.get(),
                         d_inp8.get(), d_w8.get(), N, 8, C);
    EXPECT_TRUE(bit_equal(d_dpre2.host(), d_dpre.host())) << "dpre: one pass vs element-wise kernel";
    EXPECT_TRUE(bit_equal(d_db2.host(), d_db.host())) << "dbias: one pass vs element-wise kernel + column sum";
  }
  const auto x = randn(1000, 35, 1.5f), dy = randn(1000, 36);
  std::vector<float> y_c(1000), dx_c(1000);
  ops::tanh_forward(cpu(), y_c.data(), x.data(), 1000);
  ops::tanh_backward(cpu(), dx_c.data(), dy.data(), y_c.data(), 1000);
  Dev<float> d_x(x), d_y(1000), d_dy(dy), d_dx(1000);
  ops::tanh_forward(gpu(), d_y.get(), d_x.get(), 1000);
  ops::tanh_backward(gpu(), d_dx.get(), d_dy.get(), d_y.get(), 1000);
  EXPECT_TRUE(close(d_y.host(), y_c, kFp32Rtol));
  EXPECT_TRUE(close(d_dx.host(), dx_c, kFp32Rtol));
}

TEST_F(CudaTest, AdamWAndVectorOps) {
  const int64_t n = 100003;
  const auto p0 = randn(n, 41, 0.02f), g = randn(n, 42, 1e-3f), m0 = randn(n, 43, 1e-4f);
  std::vector<float> v0(n);
  for (int64_t i = 0; i < n; ++i) v0[i] = std::fabs(m0[i]) * 1e-3f;
  std::vector<float> p_c = p0, m_c = m0, v_c = v0;
  Dev<float> d_p(p0), d_g(g), d_m(m0), d_v(v0);
  for (int64_t step = 1; step <= 3; ++step) {
    ops::adamw_update(cpu(), p_c.data(), g.data(), m_c.data(), v_c.data(), n, 1e-3, 0.9, 0.999, 1e-8, 0.01, step, 0.5);
    ops::adamw_update(gpu(), d_p.get(), d_g.get(), d_m.get(), d_v.get(), n, 1e-3, 0.9, 0.999, 1e-8, 0.01, step, 0.5);
  }
  EXPECT_TRUE(close(d_p.host(), p_c, kFp32Rtol)) << "param";
  EXPECT_TRUE(close(d_m.host(), m_c, kFp32Rtol)) << "m";
  EXPECT_TRUE(close(d_v.host(), v_c, kFp32Rtol)) << "v";
  {  // n % 4 == 0, aligned: the 4-wide kernel (the same float ops per element as the 1-wide one)
    const int64_t n4 = 100000;
    std::vector<float> p4(p0.begin(), p0.begin() + n4), m4(m0.begin(), m0.begin() + n4),
        v4(v0.begin(), v0.begin() + n4), g4(g.begin(), g.begin() + n4);
    Dev<float> d_p4(p4), d_g4(g4), d_m4(m4), d_v4(v4);
    for (int64_t step = 1; step <= 3; ++step) {
      ops::adamw_update(cpu(), p4.data(), g4.data(), m4.data(), v4.data(), n4, 1e-3, 0.9, 0.999, 1e-8, 0.01, step, 0.5);
      ops::adamw_update(gpu(), d_p4.get(), d_g4.get(), d_m4.get(), d_v4.get(), n4, 1e-3, 0.9, 0.999, 1e-8, 0.01, step,
                        0.5);
    }
    EXPECT_TRUE(close(d_p4.host(), p4, kFp32Rtol)) << "param (4-wide)";
    EXPECT_TRUE(close(d_m4.host(), m4, kFp32Rtol)) << "m (4-wide)";
    EXPECT_TRUE(close(d_v4.host(), v4, kFp32Rtol)) << "v (4-wide)";
  }

  const double ss_c = ops::sum_squares(cpu(), g.data(), n);
  const double ss_g1 = ops::sum_squares(gpu(), d_g.get(), n), ss_g2 = ops::sum_squares(gpu(), d_g.get(), n);
  EXPECT_NEAR(ss_g1, ss_c, 1e-12 * ss_c) << "double accumulation: only the order differs";
  EXPECT_EQ(std::memcmp(&ss_g1, &ss_g2, sizeof(double)), 0) << "sum_squares must be deterministic";

  std::vector<float> y_c = p0;
  ops::add_inplace(cpu(), y_c.data(), g.data(), n);
  ops::scale(cpu(), y_c.data(), n, 0.37);
  Dev<float> d_y(p0);
  ops::add_inplace(gpu(), d_y.get(), d_g.get(), n);
  ops::scale(gpu(), d_y.get(), n, 0.37);
  EXPECT_TRUE(bit_equal(d_y.host(), y_c)) << "add + scale are exact element-wise ops";
  ops::fill(gpu(), d_y.get(), n, 2.5f);
  EXPECT_TRUE(bit_equal(d_y.host(), std::vector<float>(n, 2.5f)));
  ops::fill(gpu(), d_y.get() + 1, n - 2, 0.0f);  // zero (a memset), between two elements it must not touch
  std::vector<float> zeroed(n, 0.0f);
  zeroed.front() = zeroed.back() = 2.5f;
  EXPECT_TRUE(bit_equal(d_y.host(), zeroed));
  ops::fill(gpu(), d_y.get(), n, -0.0f);  // negative zero is not all zero bytes: the kernel
  EXPECT_TRUE(bit_equal(d_y.host(), std::vector<float>(n, -0.0f)));
}

// The multi-tensor forms the optimizer runs (one launch, one host synchronisation): the per-span calls' bits, on
// spans at offsets that are not multiples of 4, an empty one, ones longer than an AdamW block's chunk (4096) and
// than a sum-of-squares chunk (65536); the bf16 copy is the updated weights rounded once, and nothing outside the
// spans is written. shift 1 puts every base pointer off 16-byte alignment (the element-wise path).
TEST_F(CudaTest, AdamWAndSumSquaresOverSpansMatchPerSpanCalls) {
  const std::vector<FlatSpan> spans = {{0, 8197, true},      {8197, 3, false},     {8200, 0, true},
                                       {8200, 70001, true},  {78201, 2048, false}, {80249, 7, true}};
  const int64_t n = 80256 + 2;  // the spans cover [0, 80256); two guard elements after them
  const auto p0 = randn(n, 51, 0.02f), g = randn(n, 52, 1e-3f), m0 = randn(n, 53, 1e-4f);
  std::vector<float> v0(n);
  for (int64_t i = 0; i < n; ++i) v0[i] = std::fabs(m0[i]) * 1e-3f;
  const bf16 guard{0x7fc1};
  const double lr = 1e-3, wd = 0.01, gscale = 0.5;
  for (int shift : {0, 1}) {
    SCOPED_TRACE(::testing::Message() << "shift " << shift);
    Dev<float> rp(p0), rm(m0), rv(v0), d_g(g), sp(p0), sm(m0), sv(v0);
    Dev<bf16> copy(n, guard);
    std::vector<float> cp = p0, cm = m0, cv = v0, rcp = p0, rcm = m0, rcv = v0;
    std::vector<bf16> ccopy(n, guard);
    for (int64_t step = 1; step <= 2; ++step) {
      for (const FlatSpan& s : spans) {
        const int64_t o = shift + s.offset;
        ops::adamw_update(gpu(), rp.get() + o, d_g.get() + o, rm.get() + o, rv.get() + o, s.n, lr, 0.9, 0.999, 1e-8,
                          s.decay ? wd : 0.0, step, gscale);
        ops::adamw_update(cpu(), rcp.data() + o, g.data() + o, rcm.data() + o, rcv.data() + o, s.n, lr, 0.9, 0.999,
                          1e-8, s.decay ? wd : 0.0, step, gscale);
      }
      ops::adamw_update_spans(gpu(), sp.get() + shift, d_g.get() + shift, sm.get() + shift, sv.get() + shift,
                              copy.get() + shift, spans, lr, 0.9, 0.999, 1e-8, wd, step, gscale);
      ops::adamw_update_spans(cpu(), cp.data() + shift, g.data() + shift, cm.data() + shift, cv.data() + shift,
                              ccopy.data() + shift, spans, lr, 0.9, 0.999, 1e-8, wd, step, gscale);
    }
    const std::vector<float> ref_p = rp.host();
    EXPECT_TRUE(bit_equal(sp.host(), ref_p)) << "param";
    EXPECT_TRUE(bit_equal(sm.host(), rm.host())) << "m";
    EXPECT_TRUE(bit_equal(sv.host(), rv.host())) << "v";
    EXPECT_TRUE(bit_equal(cp, rcp) && bit_equal(cm, rcm) && bit_equal(cv, rcv)) << "CPU spans vs CPU per span";
    EXPECT_TRUE(close(ref_p, rcp, kFp32Rtol)) << "GPU vs CPU";
    const std::vector<bf16> got = copy.host();
    int64_t wrong = 0, wrong_cpu = 0;
    for (int64_t i = 0; i < n; ++i) {
      const bool in_spans = i >= shift && i < shift + 80256;
      const uint16_t want = in_spans ? to_bf16(ref_p[i]).bits : guard.bits;
      const uint16_t want_cpu = in_spans ? to_bf16(rcp[i]).bits : guard.bits;
      wrong += got[i].bits != want;
      wrong_cpu += ccopy[i].bits != want_cpu;
    }
    EXPECT_EQ(wrong, 0) << "GPU bf16 copy elements that are not the updated weight rounded once (or a guard)";
    EXPECT_EQ(wrong_cpu, 0) << "CPU bf16 copy";

    const std::vector<double> sums = ops::sum_squares_spans(gpu(), d_g.get() + shift, spans),
                              sums_cpu = ops::sum_squares_spans(cpu(), g.data() + shift, spans);
    ASSERT_EQ(sums.size(), spans.size());
    ASSERT_EQ(sums_cpu.size(), spans.size());
    for (size_t k = 0; k < spans.size(); ++k) {
      const double one = ops::sum_squares(gpu(), d_g.get() + shift + spans[k].offset, spans[k].n);
      const double one_cpu = ops::sum_squares(cpu(), g.data() + shift + spans[k].offset, spans[k].n);
      EXPECT_EQ(std::memcmp(&sums[k], &one, sizeof(double)), 0) << "span " << k << ": " << sums[k] << " vs " << one;
      EXPECT_EQ(std::memcmp(&sums_cpu[k], &one_cpu, sizeof(double)), 0) << "CPU span " << k;
      EXPECT_NEAR(sums[k], one_cpu, 1e-12 * one_cpu) << "span " << k;
    }
    EXPECT_EQ(sums[2], 0.0) << "the empty span";
  }
}

TEST_F(CudaTest, ReductionsAreBitwiseRepeatable) {
  // Column sums (bias / LayerNorm gradients) use a fixed two-stage partition: two runs give the same bits.
  const int N = 8192 + 17, C = 1000;
  const auto dout = randn(size_t(N) * C, 51);
  Dev<float> d_dout(dout), d_a(C), d_b(C);
  Dev<float> d_inp(randn(size_t(N) * 8, 52)), d_w(randn(size_t(C) * 8, 53));
  ops::matmul_backward(gpu(), static_cast<float*>(nullptr), static_cast<float*>(nullptr), d_a.get(), d_dout.get(),
                       d_inp.get(), d_w.get(), N, 8, C);
  ops::matmul_backward(gpu(), static_cast<float*>(nullptr), static_cast<float*>(nullptr), d_b.get(), d_dout.get(),
                       d_inp.get(), d_w.get(), N, 8, C);
  EXPECT_TRUE(bit_equal(d_a.host(), d_b.host()));
  // The 4-column kernel (C % 4 == 0, aligned rows) and the 1-column one (the same dout one float off alignment) sum
  // each column in the same order: the same bits.
  Dev<float> d_shifted(one_float_off(dout)), d_c(C);
  ops::matmul_backward(gpu(), static_cast<float*>(nullptr), static_cast<float*>(nullptr), d_c.get(),
                       d_shifted.get() + 1, d_inp.get(), d_w.get(), N, 8, C);
  EXPECT_TRUE(bit_equal(d_a.host(), d_c.host())) << "4-column vs 1-column kernel";
}

TEST_F(CudaTest, Bf16ConversionRoundsToNearestEven) {
  const std::vector<float> x = {1.0f, 1.00390625f /* halfway: ties to even -> 1 */, 1.01171875f /* -> 1.015625 */,
                                -3.14159265f, 0.0f};
  Dev<float> d_x(x), d_back(x.size());
  Dev<uint16_t> d_h(x.size());
  cuda::Launch l(ctx_->stream(), ctx_.get());
  cuda::float_to_bf16(l, d_h, d_x, int64_t(x.size()));
  cuda::bf16_to_float(l, d_back, d_h, int64_t(x.size()));
  const auto back = d_back.host();
  EXPECT_EQ(back[0], 1.0f);
  EXPECT_EQ(back[1], 1.0f);
  EXPECT_EQ(back[2], 1.015625f);
  EXPECT_NEAR(back[3], -3.14159265f, 3.14159265f / 256);
  EXPECT_EQ(back[4], 0.0f);
}

// Host round-to-nearest-even to bf16 of a finite float (keep the top 16 bits, round on the bottom 16).
uint16_t host_bf16_rne(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return static_cast<uint16_t>((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

TEST_F(CudaTest, Bf16ConversionVectorisedPathAndTail) {
  // 8-wide path on aligned pointers plus a scalar tail (n = 8k + 5), and the scalar path on an unaligned source
  // (offset 1 float), both against the host rounding.
  const int64_t n = 8 * 1000 + 5;
  const auto x = randn(size_t(n) + 1, 91, 3.0f);
  Dev<float> d_x(x);
  Dev<uint16_t> d_h(size_t(n) + 1);
  cuda::Launch l(ctx_->stream(), ctx_.get());
  for (int64_t offset : {int64_t(0), int64_t(1)}) {
    SCOPED_TRACE(::testing::Message() << "source offset " << offset);
    cuda::float_to_bf16(l, d_h.get(), d_x.get() + offset, n);
    const auto h = d_h.host();
    size_t wrong = 0;
    for (int64_t i = 0; i < n; ++i) wrong += h[size_t(i)] != host_bf16_rne(x[size_t(i + offset)]);
    EXPECT_EQ(wrong, 0u);
  }
}

}  // namespace
}  // namespace erlangshen::testing
