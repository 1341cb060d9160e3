// CUDA vs CPU on bf16 activation storage (runtime/act.h): matmul forward / fused bias+GeLU / backward, LayerNorm
// forward and bias+GeLU backward with tensors stored in bf16, against the CPU emulation of the same semantics
// (runtime/ops_bf16.cpp), both through runtime/ops.h. Shapes: model-like (multiples of 8: cuBLASLt's fast paths)
// and odd ones (leading dimensions that are not, an aux ld % 8 != 0: gemm.cu's fallbacks).
//
// Tolerances. Both sides read the same bf16 values and round every fp32 GEMM operand to bf16 the same way, so they
// form the same products (exact in fp32); only the order of the fp32 sums differs (and tanh / erf by a few fp32 ulp):
//   fp32 results: |gpu - cpu| <= rtol (|cpu| + max|cpu|). GEMM outputs: rtol = kGemmRtol (1e-4): a sum of K
//     products in another order (tensor-core accumulation may also truncate within a block of products) differs
//     by at most ~K ulp of its partial sums, 512 x 2^-24 = 3e-5 of the scale for K <= 512 (typically ~sqrt(K) ulp,
//     1e-6); a layout or operand error is O(1). Column sums and LayerNorm (fp32 CUDA code, no tensor cores):
//     kFp32Rtol (1e-5), as the fp32 parity tests;
//   bf16 results: each side rounds its fp32 value once, so they differ by at most that fp32 difference plus one
//     bf16 ulp (half an ulp each way; 2^-8..2^-7 relative): |gpu - cpu| <= ulp + rtol (|cpu| + max|cpu|), the ulp
//     of the larger of the two values (a rounding that crosses a power of two).
// cuBLASLt's GeLU epilogue evaluates tanh its own way (test_cuda_dense: 2e-5 on fp32 activations), within
// kGemmRtol for act.
#include <cublasLt.h>

#include <cmath>
#include <cstring>
#include <iostream>
#include <memory>
#include <string>
#include <utility>

#include "runtime/act.h"
#include "runtime/bf16.h"
#include "tests/gpu/bf16_test_util.h"
#include "tests/gpu/gpu_test_util.h"

namespace erlangshen::testing {
namespace {

using cuda::MathMode;

constexpr double kGemmRtol = 1e-4;  // fp32 GEMM results (header comment)

// start[c] + sum_n x[n, c] over an (N, C) tensor, in double, rounded once: a bias gradient over stored values.
std::vector<float> column_sums(const std::vector<float>& x, int N, int C, const std::vector<float>& start) {
  std::vector<float> out(C);
  for (int c = 0; c < C; ++c) {
    double s = start[c];
    for (int n = 0; n < N; ++n) s += x[size_t(n) * C + c];
    out[c] = static_cast<float>(s);
  }
  return out;
}

// The tensor after a CPU and a GPU op wrote it, compared as stored.
::testing::AssertionResult matches(const Stored& t, double rtol) {
  // bf16: one ulp (each side rounds its fp32 value once; header comment)
  return t.is_bf16() ? close_ulp(t.gpu_values(), t.cpu_values(), 1.0, rtol)
                     : close(t.gpu_values(), t.cpu_values(), rtol);
}

const char* storage(bool bf) { return bf ? "bf16" : "fp32"; }

struct Shape {
  int N, C, OC;
};
// Model-like (multiples of 8), N odd with aligned leading dimensions, and odd leading dimensions (C, OC).
const Shape kShapes[] = {{64, 128, 512}, {37, 24, 40}, {37, 53, 29}};

class CudaBf16Storage : public CudaTest {
 protected:
  void SetUp() override {
    CudaTest::SetUp();
    if (ctx_) ctx_->set_math(MathMode::BF16);  // bf16 storage requires it
  }
};

TEST_F(CudaBf16Storage, MatmulForward) {
  for (const Shape& k : kShapes) {
    const auto x = randn(size_t(k.N) * k.C, 1), w = randn(size_t(k.OC) * k.C, 2, 0.05f), b = randn(k.OC, 3),
               out0 = randn(size_t(k.N) * k.OC, 5);
    Dev<float> d_b(b);
    for (bool w_bf : {false, true}) {  // the weight in fp32, or as the model's bf16 compute copy (the same values)
      Stored weight(w, w_bf);
      for (bool inp_bf : {false, true}) {
        for (bool out_bf : {false, true}) {
          if (!inp_bf && !out_bf && !w_bf) continue;       // all fp32: the fp32 op (test_cuda_dense)
          for (int variant = 0; variant < 3; ++variant) {  // bias; no bias; bias + accumulate (fp32 out only)
            const bool with_bias = variant != 1, accumulate = variant == 2;
            if (accumulate && out_bf) continue;
            SCOPED_TRACE(::testing::Message()
                         << "N=" << k.N << " C=" << k.C << " OC=" << k.OC << " weight " << storage(w_bf) << " inp "
                         << storage(inp_bf) << " out " << storage(out_bf) << " bias " << with_bias << " accumulate "
                         << accumulate);
            Stored inp(x, inp_bf), out(out0, out_bf);
            ops::matmul_forward(cpu(), out.cpu(), inp.cpu(), weight.cpu(), with_bias ? b.data() : nullptr, k.N, k.C,
                                k.OC, accumulate);
            ops::matmul_forward(gpu(), out.gpu(), inp.gpu(), weight.gpu(), with_bias ? d_b.get() : nullptr, k.N, k.C,
                                k.OC, accumulate);
            EXPECT_TRUE(matches(out, kGemmRtol));
          }
        }
      }
    }
  }
}

TEST_F(CudaBf16Storage, MatmulBiasGeluForward) {
  for (const Shape& k : kShapes) {
    const auto x = randn(size_t(k.N) * k.C, 11), w = randn(size_t(k.OC) * k.C, 12, 0.1f), b = randn(k.OC, 13),
               junk = randn(size_t(k.N) * k.OC, 14);
    Dev<float> d_w(w), d_b(b);
    for (Activation kind : {Activation::GeluTanh, Activation::GeluExact}) {  // exact: gemm()'s separate pass
      for (bool inp_bf : {false, true}) {
        for (bool act_bf : {false, true}) {  // act and pre share their storage
          if (!inp_bf && !act_bf) continue;
          SCOPED_TRACE(::testing::Message() << "N=" << k.N << " C=" << k.C << " OC=" << k.OC << " inp "
                                            << storage(inp_bf) << " act/pre " << storage(act_bf) << " "
                                            << (kind == Activation::GeluTanh ? "gelu_tanh" : "gelu"));
          Stored inp(x, inp_bf), act(junk, act_bf), pre(junk, act_bf);  // outputs start as junk: overwritten
          ops::matmul_bias_gelu_forward(cpu(), act.cpu(), pre.cpu(), inp.cpu(), w.data(), b.data(), k.N, k.C, k.OC,
                                        kind);
          ops::matmul_bias_gelu_forward(gpu(), act.gpu(), pre.gpu(), inp.gpu(), d_w.get(), d_b.get(), k.N, k.C, k.OC,
                                        kind);
          EXPECT_TRUE(matches(pre, kGemmRtol)) << "pre";
          EXPECT_TRUE(matches(act, kGemmRtol)) << "act (cuBLASLt's GeLU when fused)";
        }
      }
    }
  }
}

TEST_F(CudaBf16Storage, MatmulBackward) {
  enum class Dinp { None, Fp32, Bf16 };
  for (const Shape& k : kShapes) {
    const auto x = randn(size_t(k.N) * k.C, 1), w = randn(size_t(k.OC) * k.C, 2, 0.05f),
               dy = randn(size_t(k.N) * k.OC, 4), dinp0 = randn(size_t(k.N) * k.C, 6), dw0 = randn(w.size(), 7),
               db0 = randn(k.OC, 8);
    for (bool w_bf : {false, true}) {  // the weight in fp32, or as the model's bf16 compute copy (the same values)
      Stored weight(w, w_bf);
      for (bool dout_bf : {false, true}) {
        for (bool inp_bf : {false, true}) {
          for (Dinp di : {Dinp::None, Dinp::Fp32, Dinp::Bf16}) {
            if (!dout_bf && !inp_bf && di != Dinp::Bf16 && !w_bf) continue;  // all fp32: the fp32 op
            const bool accumulate = di == Dinp::Fp32;                        // bf16 dinp is overwrite-only
            const bool with_bias = dout_bf != inp_bf;                        // dbias on half of the cases
            SCOPED_TRACE(::testing::Message()
                         << "N=" << k.N << " C=" << k.C << " OC=" << k.OC << " weight " << storage(w_bf) << " dout "
                         << storage(dout_bf) << " inp " << storage(inp_bf) << " dinp "
                         << (di == Dinp::None ? "none" : storage(di == Dinp::Bf16)) << " dbias " << with_bias);
            Stored dout(dy, dout_bf), inp(x, inp_bf), dinp(dinp0, di == Dinp::Bf16);
            std::vector<float> dw_c = dw0, db_c = db0;
            Dev<float> d_dw(dw0), d_db(db0);
            const bool has_dinp = di != Dinp::None;
            ops::matmul_backward(cpu(), has_dinp ? dinp.cpu() : Act<float>(), dw_c.data(),
                                 with_bias ? db_c.data() : nullptr, dout.cpu(), inp.cpu(), weight.cpu(), k.N, k.C, k.OC,
                                 accumulate);
            ops::matmul_backward(gpu(), has_dinp ? dinp.gpu() : Act<float>(), d_dw.get(),
                                 with_bias ? d_db.get() : nullptr, dout.gpu(), inp.gpu(), weight.gpu(), k.N, k.C, k.OC,
                                 accumulate);
            if (has_dinp) {
              EXPECT_TRUE(matches(dinp, kGemmRtol)) << "dinp";
            }
            EXPECT_TRUE(close(d_dw.host(), dw_c, kGemmRtol)) << "dweight";
            // dbias sums dout as stored: the same values on both sides, fp32 sums in another order.
            if (with_bias) {
              EXPECT_TRUE(close(d_db.host(), db_c, kFp32Rtol)) << "dbias";
            }
          }
        }
      }
    }
  }
}

TEST_F(CudaBf16Storage, LayerNormForward) {
  for (int C : {64, 768, 53}) {
    SCOPED_TRACE(::testing::Message() << "C=" << C);
    const int N = 67;
    const auto x = randn(size_t(N) * C, 21, 2.0f, 0.5f), w = randn(C, 22, 0.2f, 1.0f), b = randn(C, 23),
               junk = randn(x.size(), 24);
    Stored out(junk, true);
    std::vector<float> mean_c(N), rstd_c(N);
    ops::layernorm_forward(cpu(), out.cpu(), mean_c.data(), rstd_c.data(), x.data(), w.data(), b.data(), N, C, 1e-12);
    Dev<float> d_x(x), d_w(w), d_b(b), d_mean(N), d_rstd(N);
    ops::layernorm_forward(gpu(), out.gpu(), d_mean.get(), d_rstd.get(), d_x.get(), d_w.get(), d_b.get(), N, C, 1e-12);
    EXPECT_TRUE(matches(out, kFp32Rtol)) << "y";
    EXPECT_TRUE(close(d_mean.host(), mean_c, kFp32Rtol)) << "mean";
    EXPECT_TRUE(close(d_rstd.host(), rstd_c, kFp32Rtol)) << "rstd";
  }
}

TEST_F(CudaBf16Storage, BiasGeluBackward) {
  for (const auto& [N, C] : {std::pair<int, int>{64, 512}, {37, 29}}) {
    const auto pre0 = randn(size_t(N) * C, 31, 2.0f), dact0 = randn(pre0.size(), 33), db0 = randn(C, 34),
               junk = randn(pre0.size(), 35);
    for (Activation kind : {Activation::GeluTanh, Activation::GeluExact}) {
      for (int mask = 0; mask < 8; ++mask) {  // storage of dact, pre, dpre
        const bool dact_bf = mask & 1, pre_bf = mask & 2, dpre_bf = mask & 4;
        if (mask == 0) continue;            // all fp32: the fp32 op
        for (bool alias : {false, true}) {  // dpre written over dact (same storage)
          if (alias && dpre_bf != dact_bf) continue;
          const bool with_bias = alias || mask % 2 == 0;
          SCOPED_TRACE(::testing::Message()
                       << "N=" << N << " C=" << C << " " << (kind == Activation::GeluTanh ? "gelu tanh" : "gelu exact")
                       << " dact " << storage(dact_bf) << " pre " << storage(pre_bf) << " dpre " << storage(dpre_bf)
                       << (alias ? " (aliasing dact)" : "") << " dbias " << with_bias);
          Stored dact(dact0, dact_bf), pre(pre0, pre_bf), own(junk, dpre_bf);
          Stored& dpre = alias ? dact : own;
          std::vector<float> db_c = db0;
          Dev<float> d_db(db0);
          ops::bias_gelu_backward(cpu(), dpre.cpu(), with_bias ? db_c.data() : nullptr, dact.cpu(), pre.cpu(), N, C,
                                  kind);
          ops::bias_gelu_backward(gpu(), dpre.gpu(), with_bias ? d_db.get() : nullptr, dact.gpu(), pre.gpu(), N, C,
                                  kind);
          EXPECT_TRUE(matches(dpre, kFp32Rtol)) << "dpre";
          if (!with_bias) continue;
          // dbias sums dpre as stored. A bf16 dpre element may round to the neighbouring value on one side (one
          // ulp, allowed above), which moves the column sum by more than an fp32 tolerance: check the GPU's dbias
          // against the column sums of the dpre the GPU stored, in double.
          EXPECT_TRUE(close(d_db.host(), column_sums(dpre.gpu_values(), N, C, db0), kFp32Rtol)) << "dbias";
          if (!dpre_bf) {
            EXPECT_TRUE(close(d_db.host(), db_c, kFp32Rtol)) << "dbias vs CPU";
          }
        }
      }
    }
  }
}

// The MLP's output layer backward through its GeLU: dpre = (dout @ W) * gelu'(pre), dW, db and the FFN-in bias
// gradient (sum of dpre as stored). The CPU rounds the product once, after the derivative; so does the GPU on
// cuBLASLt's DGELU epilogue (bf16 dpre and pre, tanh GeLU), while its composition (fp32 dpre or pre, exact GeLU, or
// cuBLASLt refusing the epilogue: the `_refuse_` runs) rounds the product into dpre before the derivative too: that
// second rounding adds at most half a bf16 ulp of the product times |gelu'| (<= 1.13), so bf16 dpre is allowed 2
// ulps. dbias_pre is checked against the sums of the dpre the GPU stored, as in BiasGeluBackward.
TEST_F(CudaBf16Storage, MatmulGeluBackward) {
  for (const Shape& k : kShapes) {
    const int N = k.N, F = k.C, C = k.OC;  // dpre / pre / act (N, F), dout (N, C), W (C, F)
    const auto pre0 = randn(size_t(N) * F, 41, 2.0f), w = randn(size_t(C) * F, 42, 0.05f),
               dy = randn(size_t(N) * C, 43), dw0 = randn(w.size(), 44), db0 = randn(C, 45), dbp0 = randn(F, 46),
               junk = randn(pre0.size(), 47);
    std::vector<float> act0(pre0.size());
    for (size_t i = 0; i < pre0.size(); ++i) act0[i] = std::tanh(pre0[i]);  // any values: act is only an operand
    for (Activation kind : {Activation::GeluTanh, Activation::GeluExact}) {
      for (int mask = 0; mask < 4; ++mask) {  // storage of dpre / act (together), and of pre / dout (together)
        const bool out_bf = mask & 1, in_bf = mask & 2;
        if (mask == 0) continue;  // all fp32: matmul_backward + bias_gelu_backward (the fp32 tests)
        SCOPED_TRACE(::testing::Message() << "N=" << N << " F=" << F << " C=" << C << " "
                                          << (kind == Activation::GeluTanh ? "gelu tanh" : "gelu exact") << " dpre/act "
                                          << storage(out_bf) << " pre/dout " << storage(in_bf));
        Stored dpre(junk, out_bf), act(act0, out_bf), pre(pre0, in_bf), dout(dy, in_bf), weight(w, true);
        std::vector<float> dw_c = dw0, db_c = db0, dbp_c = dbp0;
        Dev<float> d_dw(dw0), d_db(db0), d_dbp(dbp0);
        ops::matmul_gelu_backward(cpu(), dpre.cpu(), dw_c.data(), db_c.data(), dbp_c.data(), dout.cpu(), act.cpu(),
                                  weight.cpu(), pre.cpu(), N, F, C, kind);
        ops::matmul_gelu_backward(gpu(), dpre.gpu(), d_dw.get(), d_db.get(), d_dbp.get(), dout.gpu(), act.gpu(),
                                  weight.gpu(), pre.gpu(), N, F, C, kind);
        EXPECT_TRUE(dpre.is_bf16() ? close_ulp(dpre.gpu_values(), dpre.cpu_values(), 2.0, kGemmRtol)
                                   : close(dpre.gpu_values(), dpre.cpu_values(), kGemmRtol))
            << "dpre";
        EXPECT_TRUE(close(d_dw.host(), dw_c, kGemmRtol)) << "dweight";
        EXPECT_TRUE(close(d_db.host(), db_c, kFp32Rtol)) << "dbias";
        EXPECT_TRUE(close(d_dbp.host(), column_sums(dpre.gpu_values(), N, F, dbp0), kFp32Rtol))
            << "dbias_pre (sums of dpre as the GPU stored it)";
      }
    }
  }
}

// ContextOptions::backward_epilogues = false (train.backward_epilogues=false): the FFN-out backward is then exactly
// the GEMM into dpre and bias_gelu_backward, and a weight gradient's bias gradient the column sum: the same bits as
// those ops on the same Context.
TEST_F(CudaBf16Storage, BackwardEpiloguesOffIsTheSeparatePasses) {
  cuda::ContextOptions o;
  o.math = MathMode::BF16;
  o.backward_epilogues = false;
  ctx_ = std::make_unique<cuda::Context>(o);
  const int N = 64, F = 512, C = 128;
  const auto pre0 = randn(size_t(N) * F, 51, 2.0f), w = randn(size_t(C) * F, 52, 0.05f),
             act0 = randn(pre0.size(), 54), dbp0 = randn(F, 55);
  // dout over 2^-12 .. 2^11: its column sums need more than fp32's 24 bits, so the order of summation shows in them
  // (sums of N(0, 1) bf16 values would be exact in fp32 in any order)
  auto dy = randn(size_t(N) * C, 53);
  for (size_t i = 0; i < dy.size(); ++i) dy[i] = std::ldexp(dy[i], int(i % 24) - 12);
  Stored pre(pre0, true), act(act0, true), dout(dy, true), weight(w, true), dpre_a(pre0, true), dpre_b(pre0, true);
  Dev<float> dw_a{w.size()}, db_a{size_t(C)}, dbp_a{dbp0}, dw_b{w.size()}, db_b{size_t(C)}, dbp_b{dbp0};
  ops::matmul_gelu_backward(gpu(), dpre_a.gpu(), dw_a.get(), db_a.get(), dbp_a.get(), dout.gpu(), act.gpu(),
                            weight.gpu(), pre.gpu(), N, F, C, Activation::GeluTanh);
  ops::matmul_backward(gpu(), dpre_b.gpu(), dw_b.get(), db_b.get(), dout.gpu(), act.gpu(), weight.gpu(), N, F, C);
  ops::bias_gelu_backward(gpu(), dpre_b.gpu(), dbp_b.get(), Act<const float>(dpre_b.gpu()), pre.gpu(), N, F,
                          Activation::GeluTanh);
  EXPECT_TRUE(bit_equal(dpre_a.gpu_values(), dpre_b.gpu_values())) << "dpre";
  EXPECT_TRUE(bit_equal(dw_a.host(), dw_b.host())) << "dweight";
  EXPECT_TRUE(bit_equal(db_a.host(), db_b.host())) << "dbias";
  EXPECT_TRUE(bit_equal(dbp_a.host(), dbp_b.host())) << "dbias_pre";
  // and the bias gradient is the column sum, the bits of a deterministic Context's (which never fuses it)
  cuda::ContextOptions d = o;
  d.deterministic = true;
  cuda::Context det(d);
  Dev<float> dw_d{w.size()}, db_d{size_t(C)};
  ops::matmul_backward(Exec{Device::CUDA, det.stream(), &det}, Act<float>(), dw_d.get(), db_d.get(), dout.gpu(),
                       act.gpu(), weight.gpu(), N, F, C);
  EXPECT_TRUE(bit_equal(db_a.host(), db_d.host())) << "dbias: the column sum";
}

// dx = dropout'(dout) rounded once into bf16 (then resid + dropout(dx) from that bf16 tensor): the fp32 values are
// bit-equal on both backends (test_cuda_attention's DropoutMasksBitForBit), and both round them to nearest even, so
// the bf16 bits must be equal too.
TEST_F(CudaBf16Storage, DropoutBackwardBitForBit) {
  for (float p : {0.0f, 0.1f}) {
    for (int64_t offset : {int64_t(0), int64_t(3), int64_t(1) << 33})
    for (int64_t n : {int64_t(4096), int64_t(4096 + 5)}) {  // 4096 at offsets 0, 2^33: the 4-wide kernels
      SCOPED_TRACE(::testing::Message() << "p=" << p << " offset=" << offset << " n=" << n);
      DropoutSpec d;
      d.p = p;
      d.key = derive_key(7, RngPurpose::HiddenDropout, 3, 1, 0);
      const std::vector<float> dout = randn(n, 41);
      std::vector<bf16> dx_c(n);
      ops::dropout_backward(cpu(), Act<float>::half(dx_c.data()), dout.data(), n, d, offset);
      Dev<float> d_dout(dout);
      Dev<bf16> d_dx(std::vector<bf16>(static_cast<size_t>(n)));
      ops::dropout_backward(gpu(), Act<float>::half(d_dx.get()), d_dout.get(), n, d, offset);
      sync();
      const std::vector<bf16> dx_g = d_dx.host();
      size_t differing = 0;
      for (int64_t i = 0; i < n; ++i) differing += dx_g[i].bits != dx_c[i].bits;
      EXPECT_EQ(differing, 0u);
      // resid + dropout(x) with x in bf16 (the row-parallel output): the same fp32 arithmetic on both backends on
      // the same widened values, as the fp32 op's bit-for-bit test
      const std::vector<float> resid = randn(n, 43);
      std::vector<float> out_c(n);
      ops::dropout_residual_forward(cpu(), out_c.data(), resid.data(), Act<const float>::half(dx_c.data()), n, d,
                                    offset);
      Dev<float> d_resid(resid), d_out(std::vector<float>(static_cast<size_t>(n)));
      ops::dropout_residual_forward(gpu(), d_out.get(), d_resid.get(), Act<const float>::half(d_dx.get()), n, d,
                                    offset);
      EXPECT_TRUE(bit_equal(d_out.host(), out_c)) << "resid + dropout(bf16 x)";
      // a bf16 dout (the residual stream's gradient under train.residual=bf16) into an fp32 or a bf16 dx
      for (bool dx_bf : {false, true}) {
        Stored dout16(dout, true), dx(std::vector<float>(static_cast<size_t>(n), 7.0f), dx_bf);
        ops::dropout_backward<float>(cpu(), dx.cpu(), Act<const float>(dout16.cpu()), n, d, offset);
        ops::dropout_backward<float>(gpu(), dx.gpu(), Act<const float>(dout16.gpu()), n, d, offset);
        EXPECT_TRUE(bit_equal(dx.gpu_values(), dx.cpu_values())) << "bf16 dout, dx " << (dx_bf ? "bf16" : "fp32");
      }
    }
  }
}

// Misuse is an Error naming the op, not a wrong result.
TEST_F(CudaBf16Storage, RefusesWhatTheSemanticsExclude) {
  const int N = 16, C = 8, OC = 8;
  Dev<float> d_x(randn(size_t(N) * C, 1)), d_w(randn(size_t(OC) * C, 2)), d_b(randn(OC, 3)), d_f(size_t(N) * OC);
  Dev<bf16> d_h(std::vector<bf16>(size_t(N) * OC));
  const cuda::Launch l(ctx_->stream(), ctx_.get());
  const Act<float> out16 = Act<float>::half(d_h.get());
  auto message = [](auto&& f) -> std::string {
    try {
      f();
    } catch (const Error& e) {
      return e.what();
    }
    return "(no error)";
  };
  EXPECT_NE(message([&] {
              cuda::matmul_forward(l, out16, d_x.get(), d_w.get(), d_b.get(), N, C, OC, true);
            }).find("accumulating into bf16"),
            std::string::npos);
  EXPECT_NE(message([&] {
              cuda::matmul_backward(l, Act<float>::half(d_h.get()), nullptr, nullptr, Act<const float>(d_f.get()),
                                    Act<const float>(d_x.get()), d_w.get(), N, C, OC, true);
            }).find("accumulating into bf16"),
            std::string::npos);
  EXPECT_NE(message([&] {
              cuda::matmul_bias_gelu_forward(l, out16, Act<float>(d_f.get()), d_x.get(), d_w.get(), d_b.get(), N, C,
                                             OC, Activation::GeluTanh);
            }).find("same storage"),
            std::string::npos);
  ctx_->set_math(MathMode::FP32);
  EXPECT_NE(message([&] {
              cuda::matmul_forward(l, out16, d_x.get(), d_w.get(), d_b.get(), N, C, OC, false);
            }).find("bf16 activation storage needs MathMode::BF16"),
            std::string::npos);
  EXPECT_NE(message([&] {
              cuda::layernorm_forward(l, Act<float>::half(d_h.get()), d_f.get(), d_f.get(), Act<const float>(d_x.get()),
                                      d_w.get(), d_b.get(), N, C, 1e-5);
            }).find("layernorm_forward"),
            std::string::npos);
}

// The same op twice gives the same bits (algorithms fixed per shape; fixed-order column sums).
TEST_F(CudaBf16Storage, Repeatable) {
  const Shape k{64, 128, 512};
  const auto x = randn(size_t(k.N) * k.C, 1), w = randn(size_t(k.OC) * k.C, 2, 0.05f), b = randn(k.OC, 3),
             dy = randn(size_t(k.N) * k.OC, 4);
  Dev<float> d_w(w), d_b(b);
  Stored inp(x, true), dout(dy, true);
  std::vector<std::vector<float>> runs;
  for (int r = 0; r < 2; ++r) {
    Stored act(dy, true), pre(dy, true), dinp(x, true);
    Dev<float> d_dw(w.size()), d_db(k.OC);
    ops::matmul_bias_gelu_forward(gpu(), act.gpu(), pre.gpu(), inp.gpu(), d_w.get(), d_b.get(), k.N, k.C, k.OC,
                                  Activation::GeluTanh);
    ops::matmul_backward(gpu(), dinp.gpu(), d_dw.get(), d_db.get(), dout.gpu(), inp.gpu(), d_w.get(), k.N, k.C, k.OC);
    for (auto v : {act.gpu_values(), pre.gpu_values(), dinp.gpu_values(), d_dw.host(), d_db.host()}) runs.push_back(v);
  }
  for (size_t i = 0; i < runs.size() / 2; ++i) EXPECT_TRUE(bit_equal(runs[i], runs[i + runs.size() / 2])) << i;
}

// Whether cuBLASLt offers a configuration (its heuristic's first algorithm) and runs it once on a, b and c (c both
// C and D, beta as given): "fused", or which of the two refused and with what status. Destroys the descriptors.
std::string offered_and_run(cuda::Context& ctx, cublasLtMatmulDesc_t op, cublasLtMatrixLayout_t la,
                            cublasLtMatrixLayout_t lb, cublasLtMatrixLayout_t lc, const void* a, const void* b, void* c,
                            float beta) {
  auto lt = static_cast<cublasLtHandle_t>(ctx.cublaslt());
  cublasLtMatmulPreference_t pref = nullptr;
  cublasLtMatmulPreferenceCreate(&pref);
  const uint64_t ws = ctx.gemm_workspace_bytes();
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws));
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  const cublasStatus_t hs = cublasLtMatmulAlgoGetHeuristic(lt, op, la, lb, lc, lc, pref, 1, &result, &found);
  std::string verdict = "not offered (status " + std::to_string(static_cast<int>(hs)) + ")";
  if (hs == CUBLAS_STATUS_SUCCESS && found > 0) {
    const float alpha = 1.0f;
    const cublasStatus_t ms = cublasLtMatmul(lt, op, &alpha, a, la, b, lb, &beta, c, lc, c, lc, &result.algo,
                                             ctx.gemm_workspace(), ws, static_cast<cudaStream_t>(ctx.stream()));
    verdict = ms == CUBLAS_STATUS_SUCCESS ? "fused"
                                          : "offered but refused (status " + std::to_string(static_cast<int>(ms)) + ")";
  }
  ctx.synchronize();
  cublasLtMatmulPreferenceDestroy(pref);
  cublasLtMatrixLayoutDestroy(lc);
  cublasLtMatrixLayoutDestroy(lb);
  cublasLtMatrixLayoutDestroy(la);
  cublasLtMatmulDescDestroy(op);
  return verdict;
}

// Not a check: reports whether cuBLASLt offers the fused bf16-output configurations at a model-like shape (bf16 A,
// B and D, COMPUTE_32F, BIAS and GELU_AUX_BIAS epilogues, bf16 aux) with an fp32 bias (what gemm.cu asked for
// until the H100/H200 runs refused it) and a bf16 bias (what it asks for now), and DGELU with a bf16 aux in the
// dgrad layout (matmul_gelu_backward; without it the backward composes the GEMM and bias_gelu_backward). Without
// the forward ones gemm.cu runs the epilogue apart: the same results, one more pass, and an fp32 (N, OC) staging
// temporary that the memory plan (runtime/cuda/memory.cpp) does not count.
TEST_F(CudaBf16Storage, ReportsFusedEpilogueSupport) {
  const int m = 512, n = 64, k = 128;  // C(OC, N) = op_T(W^T(col)) @ inp^T(col), as matmul.cu's forward
  Dev<bf16> a(std::vector<bf16>(size_t(m) * k)), b(std::vector<bf16>(size_t(k) * n)),
      d(std::vector<bf16>(size_t(m) * n)), aux(std::vector<bf16>(size_t(m) * n));
  Dev<float> bias32(static_cast<size_t>(m));
  Dev<bf16> bias16(std::vector<bf16>(static_cast<size_t>(m)));
  for (const auto& [epi, epi_name] : {std::pair{CUBLASLT_EPILOGUE_BIAS, "BIAS"},
                                      {CUBLASLT_EPILOGUE_GELU_AUX_BIAS, "GELU_AUX_BIAS"},
                                      {CUBLASLT_EPILOGUE_DGELU, "DGELU"}})
    for (const int32_t bias_type : {int32_t(CUDA_R_32F), int32_t(CUDA_R_16BF)}) {
      // DGELU (matmul_gelu_backward) adds no bias: asked for once, in the dgrad GEMM's layout (A not transposed)
      const bool dgelu = epi == CUBLASLT_EPILOGUE_DGELU;
      if (dgelu && bias_type == CUDA_R_32F) continue;
      const std::string name =
          dgelu ? std::string("bf16 aux, epilogue DGELU")
                : std::string(bias_type == CUDA_R_32F ? "fp32" : "bf16") + " bias, epilogue " + epi_name;
      cublasLtMatmulDesc_t op = nullptr;
      cublasLtMatrixLayout_t la = nullptr, lb = nullptr, lc = nullptr;
      ASSERT_EQ(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F), CUBLAS_STATUS_SUCCESS);
      const cublasOperation_t ta = dgelu ? CUBLAS_OP_N : CUBLAS_OP_T;
      const int64_t ldaux = m;
      const void* bias_ptr = bias_type == CUDA_R_32F ? static_cast<const void*>(bias32.get()) : bias16.get();
      void* aux_ptr = aux.get();
      cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta));
      cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof(epi));
      if (!dgelu) {
        cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type, sizeof(bias_type));
        cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias_ptr, sizeof(bias_ptr));
      }
      if (epi != CUBLASLT_EPILOGUE_BIAS) {
        cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &aux_ptr, sizeof(aux_ptr));
        cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &ldaux, sizeof(ldaux));
      }
      if (dgelu) cublasLtMatrixLayoutCreate(&la, CUDA_R_16BF, m, k, m);  // A (m, k) as stored, ld m
      else cublasLtMatrixLayoutCreate(&la, CUDA_R_16BF, k, m, k);
      cublasLtMatrixLayoutCreate(&lb, CUDA_R_16BF, k, n, k);
      cublasLtMatrixLayoutCreate(&lc, CUDA_R_16BF, m, n, m);
      std::string verdict = offered_and_run(*ctx_, op, la, lb, lc, a.get(), b.get(), d.get(), 0.0f);
      if (verdict != "fused") verdict += ": gemm.cu runs it apart";
      std::cout << "[ report   ] cuBLASLt bf16 A/B/D + " << name << ": " << verdict << std::endl;
      RecordProperty(dgelu ? std::string("bf16_aux_DGELU")
                           : std::string(bias_type == CUDA_R_32F ? "fp32_bias_" : "bf16_bias_") + epi_name,
                     verdict);
    }
}

// Not a check either: whether cuBLASLt runs BGRADB on a weight-gradient GEMM as matmul.cu asks for it (bf16 A = inp
// and B = dout, B transposed, fp32 C accumulated, an fp32 bias gradient). Without it matmul_backward sums the bias
// gradient in a column-sum pass (the same values).
TEST_F(CudaBf16Storage, ReportsBiasGradientEpilogueSupport) {
  const int m = 128, n = 512, k = 64;  // C(C, OC) += inp^T(col) (C, N) @ op_T(dout^T(col)) (N, OC), as matmul.cu
  Dev<bf16> a(std::vector<bf16>(size_t(m) * k)), b(std::vector<bf16>(size_t(n) * k));
  Dev<float> c(size_t(m) * n), grad(static_cast<size_t>(n));
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t la = nullptr, lb = nullptr, lc = nullptr;
  ASSERT_EQ(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F), CUBLAS_STATUS_SUCCESS);
  const cublasOperation_t tb = CUBLAS_OP_T;
  const cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BGRADB;
  void* grad_ptr = grad.get();
  cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb));
  cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof(epi));
  cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &grad_ptr, sizeof(grad_ptr));
  cublasLtMatrixLayoutCreate(&la, CUDA_R_16BF, m, k, m);
  cublasLtMatrixLayoutCreate(&lb, CUDA_R_16BF, n, k, n);
  cublasLtMatrixLayoutCreate(&lc, CUDA_R_32F, m, n, m);
  std::string verdict = offered_and_run(*ctx_, op, la, lb, lc, a.get(), b.get(), c.get(), 1.0f);
  if (verdict != "fused") verdict += ": a column-sum pass";
  std::cout << "[ report   ] cuBLASLt bf16 A/B, fp32 C + fp32 bias gradient, epilogue BGRADB: " << verdict << std::endl;
  RecordProperty("fp32_bias_gradient_BGRADB", verdict);
}

}  // namespace
}  // namespace erlangshen::testing
