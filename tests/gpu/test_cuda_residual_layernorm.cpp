// The residual stream's fused ops (runtime/cuda/layernorm.cu) against the ops they fuse, on the same GPU:
//   dropout_residual_layernorm_forward == dropout_residual_forward + layernorm_forward
//   layernorm_backward_dropout         == layernorm_backward + dropout_backward
// bit for bit: the fused kernels do the same arithmetic in the same order (dropout.cu's residual add and mask,
// layernorm.cu's register kernels), so any difference is a bug. Cases: rows of 2048 (two groups a thread: the 1.3B
// model), 512 (one) and 2560 / 36 (the generic kernels: composed), a Philox offset that is a multiple of 4 (fused)
// and one that is not (composed), with and without dropout and resid, fp32 and bf16 storage of in / out / dx / dy and
// of the residual stream and its gradient (h and resid in the forward, x and dinp in the backward:
// train.residual=bf16). And against the CPU
// (the composition there, runtime/ops_bf16.cpp's emulation for bf16) within the fp32 tolerance or one bf16 ulp, and
// the refusal of an aliased dx.
#include <string>
#include <vector>

#include "runtime/act.h"
#include "runtime/bf16.h"
#include "tests/gpu/bf16_test_util.h"
#include "tests/gpu/gpu_test_util.h"

namespace erlangshen::testing {
namespace {

struct Case {
  int N, C;
  int64_t offset;  // global dropout index of element 0
};
const Case kCases[] = {{24, 2048, 4 * 1000}, {37, 512, 8}, {9, 2560, 0}, {13, 36, 4}, {16, 512, 6}};

DropoutSpec spec(float p, uint64_t seed) {
  DropoutSpec d;
  d.p = p;
  d.key = derive_key(seed, RngPurpose::HiddenDropout, 3, 1, 1);
  return d;
}

const char* storage(bool bf) { return bf ? "bf16" : "fp32"; }

class CudaResidualLayerNorm : public CudaTest {
 protected:
  void SetUp() override {
    CudaTest::SetUp();
    if (ctx_) ctx_->set_math(cuda::MathMode::BF16);  // bf16 storage needs it; fp32 ops do not care
  }
};

TEST_F(CudaResidualLayerNorm, ForwardIsTheTwoOpsBitForBit) {
  for (const Case& k : kCases)
    for (float p : {0.0f, 0.1f})
      for (bool with_resid : {true, false})
        for (int mask = 0; mask < 8; ++mask) {
          const bool in_bf = mask & 1, out_bf = mask & 2, res_bf = mask & 4;
          SCOPED_TRACE(::testing::Message() << "N=" << k.N << " C=" << k.C << " offset " << k.offset << " p " << p
                                            << " resid " << with_resid << " in " << storage(in_bf) << " out "
                                            << storage(out_bf) << " residual stream " << storage(res_bf));
          const size_t n = size_t(k.N) * k.C;
          const auto in0 = randn(n, 1), resid0 = randn(n, 2, 3.0f, 0.5f), w = randn(k.C, 3, 0.2f, 1.0f),
                     b = randn(k.C, 4), junk = randn(n, 5);
          const DropoutSpec d = spec(p, 7);
          Stored in(in0, in_bf), out_fused(junk, out_bf), out_ops(junk, out_bf), resid_s(resid0, res_bf),
              h_fused(junk, res_bf), h_ops(junk, res_bf);
          Dev<float> d_w(w), d_b(b), mean_f(k.N), rstd_f(k.N), mean_o(k.N), rstd_o(k.N);
          const Act<const float> resid = with_resid ? Act<const float>(resid_s.gpu()) : Act<const float>();
          ops::dropout_residual_layernorm_forward(gpu(), h_fused.gpu(), out_fused.gpu(), mean_f.get(), rstd_f.get(),
                                                  resid, Act<const float>(in.gpu()), d_w.get(), d_b.get(), k.N, k.C,
                                                  1e-5, d, k.offset);
          ops::dropout_residual_forward(gpu(), h_ops.gpu(), resid, Act<const float>(in.gpu()), int64_t(n), d,
                                        k.offset);
          ops::layernorm_forward(gpu(), out_ops.gpu(), mean_o.get(), rstd_o.get(), Act<const float>(h_ops.gpu()),
                                 d_w.get(), d_b.get(), k.N, k.C, 1e-5);
          EXPECT_TRUE(bit_equal(h_fused.gpu_values(), h_ops.gpu_values())) << "h";
          EXPECT_TRUE(bit_equal(out_fused.gpu_values(), out_ops.gpu_values())) << "out";
          EXPECT_TRUE(bit_equal(mean_f.host(), mean_o.host())) << "mean";
          EXPECT_TRUE(bit_equal(rstd_f.host(), rstd_o.host())) << "rstd";
          // and the CPU, which composes the two ops
          std::vector<float> mean_c(k.N), rstd_c(k.N);
          ops::dropout_residual_layernorm_forward(cpu(), h_ops.cpu(), out_ops.cpu(), mean_c.data(), rstd_c.data(),
                                                  with_resid ? Act<const float>(resid_s.cpu()) : Act<const float>(),
                                                  Act<const float>(in.cpu()), w.data(), b.data(), k.N, k.C, 1e-5, d,
                                                  k.offset);
          EXPECT_TRUE(res_bf ? close_ulp(h_fused.gpu_values(), h_ops.cpu_values(), 1.0, kFp32Rtol)
                             : close(h_fused.gpu_values(), h_ops.cpu_values(), kFp32Rtol))
              << "h vs CPU";
          EXPECT_TRUE(out_bf ? close_ulp(out_fused.gpu_values(), out_ops.cpu_values(), 1.0, kFp32Rtol)
                             : close(out_fused.gpu_values(), out_ops.cpu_values(), kFp32Rtol))
              << "out vs CPU";
          EXPECT_TRUE(close(rstd_f.host(), rstd_c, kFp32Rtol)) << "rstd vs CPU";
        }
}

TEST_F(CudaResidualLayerNorm, BackwardIsTheTwoOpsBitForBit) {
  for (const Case& k : kCases)
    for (float p : {0.0f, 0.1f})
      for (int mask = 0; mask < 16; ++mask) {
        const bool dx_bf = mask & 1, dy_bf = mask & 2;  // dy: the dgrad GEMM's output, bf16 under bf16 storage
        const bool x_bf = mask & 4, g_bf = mask & 8;    // x, dinp: the residual stream and its gradient, bf16 under
                                                        // train.residual=bf16
        SCOPED_TRACE(::testing::Message() << "N=" << k.N << " C=" << k.C << " offset " << k.offset << " p " << p
                                          << " dx " << storage(dx_bf) << " dy " << storage(dy_bf) << " x "
                                          << storage(x_bf) << " dinp " << storage(g_bf));
        const size_t n = size_t(k.N) * k.C;
        const auto x = randn(n, 11, 2.0f, 0.5f), w = randn(k.C, 12, 0.2f, 1.0f), b = randn(k.C, 13),
                   dy = randn(n, 14), dinp0 = randn(n, 15), dw0 = randn(k.C, 16), db0 = randn(k.C, 17),
                   junk = randn(n, 18);
        const DropoutSpec d = spec(p, 9);
        Dev<float> d_w(w), d_b(b), y(n), mean(k.N), rstd(k.N);
        Stored d_dy(dy, dy_bf), xs(x, x_bf);
        const Act<const float> d_x(xs.gpu()), x_c(xs.cpu());
        ops::layernorm_forward(gpu(), y.get(), mean.get(), rstd.get(), d_x, d_w.get(), d_b.get(), k.N, k.C, 1e-5);
        Dev<float> dw_f(dw0), db_f(db0), dw_o(dw0), db_o(db0);
        Stored dinp_f(dinp0, g_bf), dinp_o(dinp0, g_bf), dx_fused(junk, dx_bf), dx_ops(junk, dx_bf);
        ops::layernorm_backward_dropout(gpu(), dinp_f.gpu(), dw_f.get(), db_f.get(), dx_fused.gpu(),
                                        Act<const float>(d_dy.gpu()), d_x, d_w.get(), mean.get(), rstd.get(), k.N, k.C,
                                        d, k.offset);
        ops::layernorm_backward(gpu(), dinp_o.gpu(), dw_o.get(), db_o.get(), Act<const float>(d_dy.gpu()), d_x,
                                d_w.get(), mean.get(), rstd.get(), k.N, k.C);
        ops::dropout_backward<float>(gpu(), dx_ops.gpu(), Act<const float>(dinp_o.gpu()), int64_t(n), d, k.offset);
        EXPECT_TRUE(bit_equal(dinp_f.gpu_values(), dinp_o.gpu_values())) << "dinp";
        EXPECT_TRUE(bit_equal(dw_f.host(), dw_o.host())) << "dw";
        EXPECT_TRUE(bit_equal(db_f.host(), db_o.host())) << "db";
        EXPECT_TRUE(bit_equal(dx_fused.gpu_values(), dx_ops.gpu_values())) << "dx";
        // and the CPU (the two ops; dy read as stored)
        std::vector<float> dw_c = dw0, db_c = db0, y_c(n), mean_c(k.N), rstd_c(k.N);
        ops::layernorm_forward(cpu(), y_c.data(), mean_c.data(), rstd_c.data(), x_c, w.data(), b.data(), k.N, k.C,
                               1e-5);
        EXPECT_TRUE(close(y.host(), y_c, kFp32Rtol)) << "y vs CPU";
        ops::layernorm_backward_dropout(cpu(), dinp_o.cpu(), dw_c.data(), db_c.data(), dx_ops.cpu(),
                                        Act<const float>(d_dy.cpu()), x_c, w.data(), mean_c.data(), rstd_c.data(), k.N,
                                        k.C, d, k.offset);
        EXPECT_TRUE(g_bf ? close_ulp(dinp_f.gpu_values(), dinp_o.cpu_values(), 1.0, kFp32Rtol)
                         : close(dinp_f.gpu_values(), dinp_o.cpu_values(), kFp32Rtol))
            << "dinp vs CPU";
        EXPECT_TRUE(close(dw_f.host(), dw_c, kFp32Rtol)) << "dw vs CPU";
        EXPECT_TRUE(close(db_f.host(), db_c, kFp32Rtol)) << "db vs CPU";
        // the dropout really ran: about p of dx is 0 where dinp is not
        if (p > 0.0f) {
          const auto dxv = dx_fused.gpu_values();
          size_t zeros = 0;
          for (float v : dxv) zeros += v == 0.0f;
          EXPECT_GT(zeros, n / 20) << "dropout p = 0.1 zeroed too few";
          EXPECT_LT(zeros, n / 5) << "dropout p = 0.1 zeroed too many";
        }
      }
}

// ContextOptions::fused_layernorm_columns: the one-pass backward (dw and db summed in the rows' pass) against the
// two-pass one on the same inputs: dinp and dx bit for bit (the same per-row arithmetic), dw and db within fp32
// rounding (the same sums in another order), and a rerun gives the same bits (a fixed partition). Rows of 2048 and
// 512 over several blocks of rows (16 a block: N = 70 leaves the last one partial); dy, x and dinp all fp32, all
// bf16, and each kind alone in bf16.
TEST_F(CudaResidualLayerNorm, OnePassBackwardMatchesTwoPasses) {
  cuda::ContextOptions o;
  o.math = cuda::MathMode::BF16;
  o.fused_layernorm_columns = true;
  cuda::Context one_pass_ctx(o);
  const Exec one_pass{Device::CUDA, one_pass_ctx.stream(), &one_pass_ctx};
  const Case cases[] = {{70, 2048, 4 * 77}, {37, 512, 8}, {13, 36, 4}};
  for (const Case& k : cases)
    for (int mask : {0, 7, 1, 6}) {
      const bool dy_bf = mask & 1, x_bf = mask & 2, g_bf = mask & 4;
      SCOPED_TRACE(::testing::Message() << "N=" << k.N << " C=" << k.C << " dy " << storage(dy_bf) << " x "
                                        << storage(x_bf) << " dinp " << storage(g_bf));
      const size_t n = size_t(k.N) * k.C;
      const auto x = randn(n, 21, 2.0f, 0.5f), w = randn(k.C, 22, 0.2f, 1.0f), b = randn(k.C, 23), dy = randn(n, 24),
                 dinp0 = randn(n, 25), dw0 = randn(k.C, 26), db0 = randn(k.C, 27), junk = randn(n, 28);
      const DropoutSpec d = spec(0.1f, 5);
      Stored d_dy(dy, dy_bf), xs(x, x_bf);
      Dev<float> d_w(w), d_b(b), y(n), mean(k.N), rstd(k.N);
      ops::layernorm_forward(gpu(), y.get(), mean.get(), rstd.get(), Act<const float>(xs.gpu()), d_w.get(), d_b.get(),
                             k.N, k.C, 1e-5);
      sync();
      struct Result {
        std::vector<float> dinp, dx, dw, db;
      };
      auto run = [&](const Exec& e, bool with_dropout) {
        Stored dinp(dinp0, g_bf), dx(junk, true);
        Dev<float> dw(dw0), db(db0);
        if (with_dropout)
          ops::layernorm_backward_dropout(e, dinp.gpu(), dw.get(), db.get(), dx.gpu(), Act<const float>(d_dy.gpu()),
                                          Act<const float>(xs.gpu()), d_w.get(), mean.get(), rstd.get(), k.N, k.C, d,
                                          k.offset);
        else
          ops::layernorm_backward(e, dinp.gpu(), dw.get(), db.get(), Act<const float>(d_dy.gpu()),
                                  Act<const float>(xs.gpu()), d_w.get(), mean.get(), rstd.get(), k.N, k.C);
        static_cast<cuda::Context*>(e.backend_context)->synchronize();
        return Result{dinp.gpu_values(), with_dropout ? dx.gpu_values() : std::vector<float>(), dw.host(), db.host()};
      };
      for (bool with_dropout : {true, false}) {
        const Result two = run(gpu(), with_dropout), one = run(one_pass, with_dropout), again = run(one_pass,
                                                                                                   with_dropout);
        EXPECT_TRUE(bit_equal(one.dinp, two.dinp)) << "dinp, dropout " << with_dropout;
        EXPECT_TRUE(bit_equal(one.dx, two.dx)) << "dx";
        EXPECT_TRUE(close(one.dw, two.dw, kFp32Rtol)) << "dw";
        EXPECT_TRUE(close(one.db, two.db, kFp32Rtol)) << "db";
        EXPECT_TRUE(bit_equal(again.dw, one.dw) && bit_equal(again.db, one.db)) << "a rerun changed dw or db";
      }
    }
}

TEST_F(CudaResidualLayerNorm, BackwardRefusesAnAliasedDx) {
  const int N = 4, C = 64;
  Dev<float> x{randn(size_t(N) * C, 1)}, w{size_t(C), 1.0f}, dy{randn(size_t(N) * C, 2)}, dinp{size_t(N) * C},
      mean{size_t(N)}, rstd{size_t(N), 1.0f};
  for (float* alias : {dy.get(), x.get(), dinp.get()})
    EXPECT_THROW(ops::layernorm_backward_dropout(gpu(), dinp.get(), static_cast<float*>(nullptr),
                                                 static_cast<float*>(nullptr), Act<float>(alias), dy.get(), x.get(),
                                                 w.get(), mean.get(), rstd.get(), N, C, spec(0.1f, 1), 0),
                 Error);
}

}  // namespace
}  // namespace erlangshen::testing
