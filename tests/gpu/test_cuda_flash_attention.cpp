// The fused attention kernels (runtime/cuda/flash_attention.h) against the CPU backend's attention: forward output
// and backward dQ/dK/dV, head dim 64 / 128 / 256, padding, TP head and sample offsets, dropout on, fp32 and bf16
// storage; the dropout mask bit for bit; bitwise repeatability; refusals. Runs on a GPU and on the CUDA emulation.
#include <memory>
#include <string>

#include "runtime/act.h"
#include "runtime/bf16.h"
#include "runtime/cuda/flash_attention.h"
#include "tests/gpu/bf16_test_util.h"
#include "tests/gpu/gpu_test_util.h"

namespace erlangshen::testing {
namespace {

struct FlashCase {
  int B, T, NH, HS;
  float p;
  int64_t sample_offset;
  int head_offset, total_heads;
  bool bf16_storage;
};

void PrintTo(const FlashCase& k, std::ostream* os) {
  *os << "B=" << k.B << " T=" << k.T << " NH=" << k.NH << " HS=" << k.HS << " p=" << k.p
      << " sample_offset=" << k.sample_offset << " heads " << k.head_offset << "/" << k.total_heads
      << (k.bf16_storage ? " bf16 storage" : " fp32 storage");
}

class CudaFlashAttention : public CudaTest, public ::testing::WithParamInterface<FlashCase> {
 protected:
  void SetUp() override {
    CudaTest::SetUp();
    if (IsSkipped()) return;
    ctx_->set_math(cuda::MathMode::BF16);
  }
  cuda::Launch launch() const { return cuda::Launch(ctx_->stream(), ctx_.get()); }
};

std::vector<float> rounded(std::vector<float> v) {
  for (float& x : v) x = round_to_bf16(x);
  return v;
}

// Sample b has b * 13 % T padded keys at the end.
std::vector<uint8_t> key_mask(int B, int T) {
  std::vector<uint8_t> valid(size_t(B) * T, 1);
  for (int b = 0; b < B; ++b)
    for (int t = T - (b * 13) % T; t < T; ++t) valid[size_t(b) * T + t] = 0;
  return valid;
}

// Tolerances (as test_cuda_attention's bf16-math case, which forms the same bf16 operands): Q, K, V, dO, Pd and dS
// enter the products as bf16 values (relative error 2^-9 each), sums in fp32, softmax in fp32; forward within 1e-2
// of the element plus the tensor's largest magnitude, backward (two rounded products and the softmax Jacobian)
// 3e-2. The inputs are bf16 values on both sides, so only the kernel's own roundings count; a bf16-stored result
// adds half an ulp (< 2^-9), inside those bounds.
constexpr double kForwardRtol = 1e-2, kBackwardRtol = 3e-2;

TEST_P(CudaFlashAttention, MatchesCpuAttention) {
  const FlashCase& k = GetParam();
  const cpu::AttentionShape s{k.B, k.T, k.NH, k.HS, k.sample_offset, k.head_offset, k.total_heads};
  ASSERT_TRUE(cuda::flash_attention_supported(launch(), s));
  DropoutSpec d;
  d.p = k.p;
  d.key = derive_key(1234, RngPurpose::AttentionDropout, 7, 3, 0);
  const size_t C = size_t(k.NH) * k.HS, N = size_t(k.B) * k.T;
  const auto qkv = rounded(randn(N * 3 * C, 61, 0.5f)), dout = rounded(randn(N * C, 62));
  const auto valid = key_mask(k.B, k.T);

  std::vector<float> out_c(N * C), probs_c(size_t(k.B) * k.NH * k.T * k.T), dqkv_c(N * 3 * C);
  std::vector<float> scratch_c(cpu::attention_scratch_elems(s));
  ops::attention_forward(Exec{}, out_c.data(), probs_c.data(), scratch_c.data(), qkv.data(), valid.data(), s, d);
  ops::attention_backward(Exec{}, dqkv_c.data(), scratch_c.data(), dout.data(), qkv.data(), probs_c.data(),
                          valid.data(), s, d);

  Stored g_qkv(qkv, k.bf16_storage), g_dout(dout, k.bf16_storage), g_out(randn(N * C, 63), k.bf16_storage),
      g_dqkv(randn(N * 3 * C, 64), k.bf16_storage);  // outputs start as junk: every element is written
  Dev<uint8_t> d_valid(valid);
  Dev<float> d_stats(size_t(k.B) * k.NH * k.T * 2), d_scratch(size_t(cuda::flash_attention_scratch_elems(s)));
  cuda::flash_attention_forward(launch(), g_out.gpu(), d_stats.get(), d_scratch.get(), g_qkv.gpu(), d_valid.get(), s,
                                d);
  cuda::flash_attention_backward(launch(), g_dqkv.gpu(), d_scratch.get(), g_dout.gpu(), g_out.gpu(), g_qkv.gpu(),
                                 d_stats.get(), d_valid.get(), s, d);
  sync();
  EXPECT_TRUE(close(g_out.gpu_values(), out_c, kForwardRtol)) << "out";
  EXPECT_TRUE(close(g_dqkv.gpu_values(), dqkv_c, kBackwardRtol)) << "dqkv";
  // The saved row statistics: m is the largest valid score, 1 / sum makes each CPU probability row.
  const auto stats = d_stats.host();
  size_t bad = 0;
  for (int b = 0; b < k.B; ++b)
    for (int h = 0; h < k.NH; ++h)
      for (int i = 0; i < k.T; ++i) {
        const size_t row = (size_t(b) * k.NH + h) * k.T + i;
        // Row max of the scores from the probabilities: p_max = exp(0) / sum = inv.
        double pmax = 0.0;
        for (int j = 0; j < k.T; ++j) pmax = std::max(pmax, double(probs_c[row * k.T + j]));
        if (std::fabs(stats[2 * row + 1] - pmax) > 1e-2 * pmax + 1e-6) ++bad;
      }
  EXPECT_EQ(bad, 0u) << "rows whose saved 1/sum is not the CPU's largest probability";
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, CudaFlashAttention,
    ::testing::Values(FlashCase{2, 128, 4, 64, 0.0f, 0, 0, 0, false},   // bert-base head dim, no dropout
                      FlashCase{2, 128, 4, 64, 0.1f, 5, 4, 12, true},   // TP shard: heads 4..7 of 12, samples from 5
                      FlashCase{3, 37, 3, 64, 0.25f, 1, 1, 5, false},   // odd T: partial tiles, unaligned Philox
                      FlashCase{1, 200, 2, 128, 0.1f, 2, 0, 2, true},   // HS 128, T not a multiple of 64
                      FlashCase{1, 160, 2, 256, 0.1f, 3, 0, 8, false},  // the 1.3B head dim
                      FlashCase{1, 128, 1, 256, 0.1f, 0, 3, 8, true}),  // the 1.3B head dim, bf16 storage
    [](const ::testing::TestParamInfo<FlashCase>& i) {
      const FlashCase& k = i.param;
      return "B" + std::to_string(k.B) + "_T" + std::to_string(k.T) + "_NH" + std::to_string(k.NH) + "_HS" +
             std::to_string(k.HS) + "_p" + std::to_string(static_cast<int>(k.p * 100)) +
             (k.bf16_storage ? "_bf16" : "_fp32");
    });

TEST_F(CudaTest, FlashAttentionDropoutMaskBitForBit) {
  // V = one-hot rows (V[j] = e_j, HS >= T): out row i = Pd[i, :] (one exact product per element), so the mask is
  // visible. A dropped element is exactly 0 where the CPU has p / (1 - p) ~ 1/45: far outside 1e-2 of the scale.
  ctx_->set_math(cuda::MathMode::BF16);
  const int B = 2, T = 64, NH = 2, HS = 64;
  const cpu::AttentionShape s{B, T, NH, HS, 9, 1, 4};
  DropoutSpec d;
  d.p = 0.3f;
  d.key = derive_key(5, RngPurpose::AttentionDropout, 1, 0, 0);
  const size_t C = size_t(NH) * HS, N = size_t(B) * T;
  auto qkv = rounded(randn(N * 3 * C, 81, 0.3f));
  for (int b = 0; b < B; ++b)
    for (int j = 0; j < T; ++j)
      for (int h = 0; h < NH; ++h)
        for (int e = 0; e < HS; ++e) qkv[(size_t(b) * T + j) * 3 * C + 2 * C + size_t(h) * HS + e] = e == j ? 1.f : 0.f;
  const std::vector<uint8_t> valid(N, 1);
  std::vector<float> out_c(N * C), probs_c(size_t(B) * NH * T * T), scratch_c(cpu::attention_scratch_elems(s));
  ops::attention_forward(Exec{}, out_c.data(), probs_c.data(), scratch_c.data(), qkv.data(), valid.data(), s, d);
  Dev<float> d_qkv(qkv), d_out(N * C), d_stats(size_t(B) * NH * T * 2),
      d_scratch(size_t(cuda::flash_attention_scratch_elems(s)));
  Dev<uint8_t> d_valid(valid);
  const cuda::Launch l(ctx_->stream(), ctx_.get());
  cuda::flash_attention_forward(l, Act<float>(d_out.get()), d_stats.get(), d_scratch.get(),
                                Act<const float>(d_qkv.get()), d_valid.get(), s, d);
  const auto out = d_out.host();
  size_t zeros_c = 0, mismatched = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    zeros_c += out_c[i] == 0.0f;
    mismatched += (out_c[i] == 0.0f) != (out[i] == 0.0f);
  }
  EXPECT_GT(zeros_c, out.size() / 5) << "the test premise: about 30% of the elements dropped";
  EXPECT_EQ(mismatched, 0u) << "elements dropped on one side only";
  EXPECT_TRUE(close(out, out_c, 1e-2));
}

TEST_F(CudaTest, FlashAttentionBackwardIsBitwiseRepeatable) {
  ctx_->set_math(cuda::MathMode::BF16);
  const cpu::AttentionShape s{2, 96, 2, 64, 0, 0, 0};
  DropoutSpec d;
  d.p = 0.1f;
  d.key = derive_key(3, RngPurpose::AttentionDropout, 2, 1, 0);
  const size_t C = 128, N = 192;
  Dev<float> d_qkv(randn(N * 3 * C, 5, 0.5f)), d_dout(randn(N * C, 6)), d_out(N * C), d_stats(2 * 2 * 96 * 2),
      d_scratch(size_t(cuda::flash_attention_scratch_elems(s))), d_dqkv(N * 3 * C);
  Dev<uint8_t> d_valid(key_mask(2, 96));
  const cuda::Launch l(ctx_->stream(), ctx_.get());
  cuda::flash_attention_forward(l, Act<float>(d_out.get()), d_stats.get(), d_scratch.get(),
                                Act<const float>(d_qkv.get()), d_valid.get(), s, d);
  std::vector<float> first;
  for (int run = 0; run < 2; ++run) {
    cuda::flash_attention_backward(l, Act<float>(d_dqkv.get()), d_scratch.get(), Act<const float>(d_dout.get()),
                                   Act<const float>(d_out.get()), Act<const float>(d_qkv.get()), d_stats.get(),
                                   d_valid.get(), s, d);
    if (run == 0) first = d_dqkv.host();
  }
  EXPECT_TRUE(bit_equal(d_dqkv.host(), first));
}

TEST_F(CudaTest, FlashAttentionRefusesWhatItCannotRun) {
  const cuda::Launch l(ctx_->stream(), ctx_.get());
  const cpu::AttentionShape s64{1, 64, 2, 64, 0, 0, 0}, s32{1, 64, 2, 32, 0, 0, 0};
  EXPECT_FALSE(cuda::flash_attention_supported(l, s64)) << "fp32 math (the fixture's Context)";
  ctx_->set_math(cuda::MathMode::BF16);
  EXPECT_TRUE(cuda::flash_attention_supported(l, s64));
  EXPECT_FALSE(cuda::flash_attention_supported(l, s32)) << "head size 32";
  Dev<float> buf(64 * 3 * 64 * 4);
  Dev<uint8_t> valid(std::vector<uint8_t>(64, 1));
  try {
    cuda::flash_attention_forward(l, Act<float>(buf.get()), buf.get(), buf.get(), Act<const float>(buf.get()),
                                  valid.get(), s32, DropoutSpec{});
    ADD_FAILURE() << "head size 32 accepted";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("HS 32"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace erlangshen::testing
