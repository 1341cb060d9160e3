// CUDA vs CPU: attention forward/backward (head dim 64 and 256, padding, dropout on and off, TP offsets) and the
// dropout masks, which must agree bit for bit (same Philox rule, runtime/philox.h).
#include "tests/gpu/gpu_test_util.h"

namespace erlangshen::testing {
namespace {

struct AttnCase {
  int B, T, NH, HS;
  float p;
  int64_t sample_offset;
  int head_offset, total_heads;
};

void PrintTo(const AttnCase& k, std::ostream* os) {
  *os << "B=" << k.B << " T=" << k.T << " NH=" << k.NH << " HS=" << k.HS << " p=" << k.p
      << " sample_offset=" << k.sample_offset << " heads " << k.head_offset << "/" << k.total_heads;
}

class CudaAttention : public CudaTest, public ::testing::WithParamInterface<AttnCase> {};

// Runs the CPU reference and the GPU op on the same inputs; compares probs, out and dqkv within the tolerances.
void check_against_cpu(const AttnCase& k, const Exec& g, double rtol_fwd, double rtol_bwd) {
  cpu::AttentionShape s{k.B, k.T, k.NH, k.HS, k.sample_offset, k.head_offset, k.total_heads};
  DropoutSpec d;
  d.p = k.p;
  d.key = derive_key(1234, RngPurpose::AttentionDropout, 7, 3, 0);
  const size_t C = size_t(k.NH) * k.HS, N = size_t(k.B) * k.T;
  const auto qkv = randn(N * 3 * C, 61, 0.5f), dout = randn(N * C, 62);
  std::vector<uint8_t> valid(N, 1);
  for (int b = 0; b < k.B; ++b)  // sample b has b * 13 % T padded keys at the end
    for (int t = k.T - (b * 13) % k.T; t < k.T; ++t) valid[size_t(b) * k.T + t] = 0;

  std::vector<float> out_c(N * C), probs_c(size_t(k.B) * k.NH * k.T * k.T), dqkv_c(N * 3 * C);
  std::vector<float> scratch_c(cpu::attention_scratch_elems(s));
  const Exec cpu_exec{};
  ops::attention_forward(cpu_exec, out_c.data(), probs_c.data(), scratch_c.data(), qkv.data(), valid.data(), s, d);
  ops::attention_backward(cpu_exec, dqkv_c.data(), scratch_c.data(), dout.data(), qkv.data(), probs_c.data(),
                          valid.data(), s, d);

  Dev<float> d_qkv(qkv), d_dout(dout), d_out(out_c.size()), d_probs(probs_c.size()), d_dqkv(dqkv_c.size()),
      d_scratch(size_t(ops::attention_scratch_elems(g, s)));
  Dev<uint8_t> d_valid(valid);
  ops::attention_forward(g, d_out.get(), d_probs.get(), d_scratch.get(), d_qkv.get(), d_valid.get(), s, d);
  ops::attention_backward(g, d_dqkv.get(), d_scratch.get(), d_dout.get(), d_qkv.get(), d_probs.get(), d_valid.get(),
                          s, d);
  EXPECT_TRUE(close(d_probs.host(), probs_c, rtol_fwd)) << "probs";
  // A single differing dropout bit changes an output by p_ij * v / (1 - p) ~ 1e-3 of the scale: far outside 1e-5.
  EXPECT_TRUE(close(d_out.host(), out_c, rtol_fwd)) << "out";
  EXPECT_TRUE(close(d_dqkv.host(), dqkv_c, rtol_bwd)) << "dqkv";
}

TEST_P(CudaAttention, ForwardBackwardMatchCpu) { check_against_cpu(GetParam(), gpu(), kFp32Rtol, kFp32Rtol); }

// bf16 math (T and HS multiples of 8; the odd-T case runs the fp32 path and meets these bounds trivially): Q, K, V,
// dO, Pd and dS rounded to bf16 (relative error 2^-9 each), products accumulated in fp32, softmax in fp32. The
// scores' error is ~2^-8 of the natural scale sum_k |q_k k_k| / sqrt(HS); a logit error e moves a probability by
// ~e relatively, so probs and out stay within 1e-2 of the element plus the tensor's largest magnitude (as the
// bf16 matmul test). Backward chains two rounded GEMMs and the softmax Jacobian: 3e-2.
TEST_P(CudaAttention, Bf16WithinBf16Tolerance) {
  ctx_->set_math(cuda::MathMode::BF16);
  check_against_cpu(GetParam(), gpu(), 1e-2, 3e-2);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, CudaAttention,
    ::testing::Values(AttnCase{2, 128, 4, 64, 0.0f, 0, 0, 0},      // bert-base head dim, no dropout
                      AttnCase{2, 128, 4, 64, 0.1f, 5, 4, 12},     // TP shard: heads 4..7 of 12, samples from 5
                      AttnCase{2, 512, 2, 256, 0.1f, 0, 0, 0},     // 1.3B head dim at seq 512
                      AttnCase{1, 512, 8, 256, 0.1f, 3, 0, 8},     // full 1.3B head count
                      AttnCase{3, 37, 3, 64, 0.25f, 1, 1, 5},      // odd T: unaligned Philox groups
                      AttnCase{1, 640, 2, 64, 0.1f, 2, 0, 2}),     // T > 512: two register groups per thread
    [](const ::testing::TestParamInfo<AttnCase>& i) {
      const AttnCase& k = i.param;
      return "B" + std::to_string(k.B) + "_T" + std::to_string(k.T) + "_NH" + std::to_string(k.NH) + "_HS" +
             std::to_string(k.HS) + "_p" + std::to_string(static_cast<int>(k.p * 100));
    });

TEST_F(CudaTest, DropoutMasksBitForBit) {
  // dropout of ones with no residual exposes the mask: out = keep ? 1/(1-p) : 0. Odd offsets and lengths cover
  // Philox groups that straddle the slice boundaries.
  for (int64_t offset : {int64_t(0), int64_t(1), int64_t(6), int64_t(1) << 33}) {
    for (int64_t n : {int64_t(1), int64_t(7), int64_t(4096 + 3)}) {
      SCOPED_TRACE(::testing::Message() << "offset=" << offset << " n=" << n);
      DropoutSpec d;
      d.p = 0.1f;
      d.key = derive_key(99, RngPurpose::HiddenDropout, 11, 2, 1);
      const std::vector<float> ones(n, 1.0f), resid = randn(n, 71);
      std::vector<float> mask_c(n), out_c(n), back_c(n);
      ops::dropout_residual_forward(cpu(), mask_c.data(), static_cast<const float*>(nullptr), ones.data(), n, d,
                                    offset);
      ops::dropout_residual_forward(cpu(), out_c.data(), resid.data(), resid.data(), n, d, offset);
      ops::dropout_backward(cpu(), back_c.data(), resid.data(), n, d, offset);
      Dev<float> d_ones(ones), d_resid(resid), d_mask(n), d_out(n), d_back(n);
      ops::dropout_residual_forward(gpu(), d_mask.get(), static_cast<const float*>(nullptr), d_ones.get(), n, d, offset);
      ops::dropout_residual_forward(gpu(), d_out.get(), d_resid.get(), d_resid.get(), n, d, offset);
      ops::dropout_backward(gpu(), d_back.get(), d_resid.get(), n, d, offset);
      EXPECT_TRUE(bit_equal(d_mask.host(), mask_c)) << "mask";
      EXPECT_TRUE(bit_equal(d_out.host(), out_c)) << "resid + dropout(x)";
      EXPECT_TRUE(bit_equal(d_back.host(), back_c)) << "backward";
    }
  }
}

TEST_F(CudaTest, AttentionDropoutMaskBitForBit) {
  // With V = one-hot rows (V[j] = e_j, HS >= T), out row i = dropout(P)[i, :] exactly (one product per element),
  // so the attention dropout mask is compared bit for bit through the op's output: in fp32 math, and in bf16
  // math, where Pd is stored in bf16 (a kept p ~ 1/64 stays far from underflow, a dropped one is exactly 0).
  for (cuda::MathMode math : {cuda::MathMode::FP32, cuda::MathMode::BF16}) {
  SCOPED_TRACE(cuda::math_mode_name(math));
  ctx_->set_math(math);
  const int B = 2, T = 64, NH = 2, HS = 64;
  cpu::AttentionShape s{B, T, NH, HS, 9, 1, 4};
  DropoutSpec d;
  d.p = 0.3f;
  d.key = derive_key(5, RngPurpose::AttentionDropout, 1, 0, 0);
  const size_t C = size_t(NH) * HS;
  auto qkv = randn(size_t(B) * T * 3 * C, 81, 0.3f);
  for (int b = 0; b < B; ++b)
    for (int j = 0; j < T; ++j)
      for (int h = 0; h < NH; ++h)
        for (int c = 0; c < HS; ++c) qkv[(size_t(b) * T + j) * 3 * C + 2 * C + h * HS + c] = c == j ? 1.0f : 0.0f;
  std::vector<uint8_t> valid(size_t(B) * T, 1);
  std::vector<float> out_c(size_t(B) * T * C), probs_c(size_t(B) * NH * T * T), scratch(cpu::attention_scratch_elems(s));
  ops::attention_forward(cpu(), out_c.data(), probs_c.data(), scratch.data(), qkv.data(), valid.data(), s, d);
  Dev<float> d_qkv(qkv), d_out(out_c.size()), d_probs(probs_c.size()),
      d_scratch(size_t(ops::attention_scratch_elems(gpu(), s)));
  Dev<uint8_t> d_valid(valid);
  ops::attention_forward(gpu(), d_out.get(), d_probs.get(), d_scratch.get(), d_qkv.get(), d_valid.get(), s, d);
  const auto out_g = d_out.host();
  size_t mismatched = 0;
  for (size_t i = 0; i < out_c.size(); ++i) mismatched += (out_c[i] == 0.0f) != (out_g[i] == 0.0f);
  EXPECT_EQ(mismatched, 0u) << "dropped positions differ between CPU and GPU";
  EXPECT_TRUE(close(out_g, out_c, math == cuda::MathMode::FP32 ? kFp32Rtol : 1e-2));
  }
}

}  // namespace
}  // namespace erlangshen::testing
