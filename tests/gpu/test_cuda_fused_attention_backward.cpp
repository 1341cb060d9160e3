// The fused attention backward for T <= 128 (ContextOptions::fused_attention_backward,
// runtime/cuda/attention_fused_backward.cu) against the unfused backward it replaces (4 NH GEMMs and the row pass;
// itself tested against the CPU in test_cuda_attention) and against the CPU emulation of bf16 storage, from the
// same saved state (the unfused forward's bf16 scores and row statistics):
//   - dQ, dK, dV within bf16 tolerance of both (dS and Pd are rounded to bf16 on every path; the unfused one also
//     rounds dPd, and the sums run in other orders);
//   - a sample without a valid key gets exactly zero gradients;
//   - the dropout mask bit for bit against runtime/philox.h's keep rule, read through dV: with Q = 0 (P uniform over
//     the valid keys) and dO row i = e_i, dV[j][i] = Pd_ij is non-zero exactly where key j is valid and kept;
//   - fp32 and bf16 dqkv storage; head dims 64, 128, 256; T from 16 to 128; TP head offsets;
//   - the shapes it takes (and refuses).
#include <cmath>
#include <vector>

#include "runtime/act.h"
#include "runtime/bf16.h"
#include "runtime/cuda/attention_fused_backward.h"
#include "runtime/philox.h"
#include "tests/gpu/bf16_test_util.h"
#include "tests/gpu/fused_attention_test_util.h"
#include "tests/gpu/gpu_test_util.h"

namespace erlangshen::testing {
namespace {

class FusedAttentionBackward : public CudaTest, public ::testing::WithParamInterface<FusedCase> {};

// The unfused forward (saving S and its row statistics) and the backward, fused or not: dqkv. bf16_io false: qkv,
// out, dout and dqkv in fp32 storage (the saved state bf16 either way).
std::vector<float> gpu_dqkv(const FusedSetup& a, bool fused, const std::vector<float>& qkv,
                            const std::vector<float>& dout, bool bf16_io = true) {
  cuda::ContextOptions o;
  o.fused_attention_backward = fused;
  return run_attention(a, o, qkv, dout, bf16_io).dqkv;
}

TEST_P(FusedAttentionBackward, GivesTheUnfusedAndCpuGradients) {
  const FusedCase& k = GetParam();
  const FusedSetup a(k);
  ASSERT_TRUE(cuda::fused_attention_backward_supported(a.s)) << "test premise: the fused backward takes this shape";
  const auto qkv = bf16_values(randn(a.N * 3 * a.C, 91, 0.5f)), dout = bf16_values(randn(a.N * a.C, 92));
  const std::vector<float> fused = gpu_dqkv(a, true, qkv, dout), unfused = gpu_dqkv(a, false, qkv, dout);
  EXPECT_TRUE(close(fused, unfused, 2e-2)) << "dqkv vs the unfused backward";
  EXPECT_TRUE(close(fused, cpu_attention(a, qkv, dout).dqkv, 2e-2)) << "dqkv vs CPU";
  if (k.dead_sample) {  // sample 1: no valid key, so P = 0 in every row: no gradient reaches its Q, K or V
    size_t nonzero = 0;
    for (size_t i = a.N / k.B * 3 * a.C; i < 2 * a.N / k.B * 3 * a.C; ++i) nonzero += fused[i] != 0.0f;
    EXPECT_EQ(nonzero, 0u) << "dqkv of the sample without a valid key";
  }
}

TEST_P(FusedAttentionBackward, Fp32Storage) {
  const FusedCase& k = GetParam();
  const FusedSetup a(k);
  const auto qkv = randn(a.N * 3 * a.C, 95, 0.5f), dout = randn(a.N * a.C, 96);
  EXPECT_TRUE(close(gpu_dqkv(a, true, qkv, dout, false), gpu_dqkv(a, false, qkv, dout, false), 2e-2));
}

TEST_P(FusedAttentionBackward, DropoutMaskBitForBit) {
  const FusedCase& k = GetParam();
  if (k.p == 0.0f || k.T > k.HS) GTEST_SKIP() << "needs dropout and T <= HS (a one-hot dO row per query)";
  const FusedSetup a(k);
  // Q = 0 (P uniform over the valid keys), K and V random; dO row i = e_i in its head's columns.
  std::vector<float> qkv = bf16_values(randn(a.N * 3 * a.C, 97, 0.5f)), dout(a.N * a.C, 0.0f);
  for (size_t n = 0; n < a.N; ++n)
    for (int h = 0; h < k.NH; ++h) {
      for (int c = 0; c < k.HS; ++c) qkv[n * 3 * a.C + size_t(h) * k.HS + c] = 0.0f;
      dout[n * a.C + size_t(h) * k.HS + n % size_t(k.T)] = 1.0f;
    }
  const std::vector<float> dqkv = gpu_dqkv(a, true, qkv, dout);
  expect_dropout_mask(k, a, "dV[j][i]", [&](int b, int h, int i, int j) {
    return dqkv[(size_t(b) * k.T + j) * 3 * a.C + 2 * a.C + size_t(h) * k.HS + i];
  });
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, FusedAttentionBackward,
    ::testing::Values(FusedCase{2, 64, 2, 64, 0.1f, 0, 0, 0, false},      // bert-base's head dim
                      FusedCase{3, 48, 2, 64, 0.1f, 5, 0, 0, true},       // 3 warps, a dead sample
                      FusedCase{2, 128, 1, 128, 0.1f, 3, 1, 4, false},    // the longest T; TP: head 1 of 4
                      FusedCase{2, 32, 2, 64, 0.0f, 0, 0, 0, false},      // no dropout
                      FusedCase{2, 16, 1, 256, 0.1f, 0, 0, 0, false}));   // the 1.3B head dim, one warp

TEST(FusedAttentionBackwardShapes, TakesShortSequencesOnly) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA GPU visible";
  EXPECT_TRUE(cuda::fused_attention_backward_supported(cpu::AttentionShape{1, 128, 12, 64}));  // bert-base
  EXPECT_TRUE(cuda::fused_attention_backward_supported(cpu::AttentionShape{1, 64, 8, 256}));
  EXPECT_FALSE(cuda::fused_attention_backward_supported(cpu::AttentionShape{1, 128, 8, 256}));  // shared memory
  EXPECT_FALSE(cuda::fused_attention_backward_supported(cpu::AttentionShape{1, 144, 1, 64}));   // T > 128
  EXPECT_FALSE(cuda::fused_attention_backward_supported(cpu::AttentionShape{1, 120, 1, 64}));   // T % 16 != 0
  EXPECT_FALSE(cuda::fused_attention_backward_supported(cpu::AttentionShape{1, 64, 1, 96}));    // head dim 96
}

}  // namespace
}  // namespace erlangshen::testing
