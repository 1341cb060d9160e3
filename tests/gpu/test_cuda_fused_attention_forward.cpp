// The fused attention forward (ContextOptions::fused_attention_forward, runtime/cuda/attention_fused_forward.cu)
// against the unfused forward it replaces (the QK^T GEMM, the softmax row kernel, the PV GEMM; itself tested against
// the CPU in test_cuda_attention), on bf16 storage with the scores as the saved state:
//   - the saved bf16 scores within one bf16 ulp (the GEMMs' fp32 sums may be ordered differently), the row maxima
//     within one ulp, 1 / sum within 2e-3 relative, rows without a valid key (-inf, 0) in both;
//   - out within bf16 tolerance of the unfused forward and of the CPU emulation;
//   - the unfused backward run from either saved state gives the same gradients within bf16 tolerance;
//   - the dropout mask bit for bit against runtime/philox.h's keep rule, read through Q = 0 (uniform P) and a
//     one-hot V (out column j of query row i is non-zero exactly where key j is valid and kept).
// Head dims 64, 128, 256; T a multiple of 64 and not (a partial last tile of queries and keys); TP head offsets;
// blocks of 4 and 8 warps (ContextOptions::fused_attention_forward_warps) give the same bits.
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "runtime/act.h"
#include "runtime/bf16.h"
#include "runtime/cuda/attention_fused_forward.h"
#include "runtime/philox.h"
#include "tests/gpu/bf16_test_util.h"
#include "tests/gpu/fused_attention_test_util.h"
#include "tests/gpu/gpu_test_util.h"

namespace erlangshen::testing {
namespace {

class FusedAttentionForward : public CudaTest, public ::testing::WithParamInterface<FusedCase> {};

// One forward (fused or not) and the unfused backward from its saved state, bf16 storage throughout.
struct Result {
  std::vector<float> out, scores, row_max, row_inv, dqkv;
};

// warps: ContextOptions::fused_attention_forward_warps (0: the kernel's choice). bf16_io false: qkv, out, dout and
// dqkv in fp32 storage (the probabilities still bf16: the scores are the saved state only then).
Result run(const FusedSetup& a, bool fused, const std::vector<float>& qkv, const std::vector<float>& dout,
           int warps = 0, bool bf16_io = true) {
  cuda::ContextOptions o;
  o.fused_attention_forward = fused;
  o.fused_attention_forward_warps = warps;
  const AttentionRun run = run_attention(a, o, qkv, dout, bf16_io);
  Result r;
  r.out = run.out;
  r.dqkv = run.dqkv;
  const std::vector<bf16>& saved = run.saved;
  r.scores = widen(std::vector<bf16>(saved.begin(), saved.begin() + a.TT));
  const size_t rows = a.TT / size_t(a.s.Tn);
  std::vector<float> stats(2 * rows);
  std::memcpy(stats.data(), saved.data() + a.TT, sizeof(float) * stats.size());  // (max, 1 / sum) per row
  for (size_t i = 0; i < rows; ++i) r.row_max.push_back(stats[2 * i]), r.row_inv.push_back(stats[2 * i + 1]);
  return r;
}

TEST_P(FusedAttentionForward, SavesTheUnfusedStateAndGivesItsResults) {
  const FusedCase& k = GetParam();
  const FusedSetup a(k);
  ASSERT_TRUE(cuda::fused_attention_forward_supported(a.s)) << "test premise: the fused forward takes this shape";
  const auto qkv = bf16_values(randn(a.N * 3 * a.C, 81, 0.5f)), dout = bf16_values(randn(a.N * a.C, 82));
  const Result fused = run(a, true, qkv, dout), unfused = run(a, false, qkv, dout);

  EXPECT_TRUE(close_ulp(fused.scores, unfused.scores, 1.0, 0.0)) << "saved scores";
  // Row statistics: a row without a valid key is (-inf, 0) in both; the others' max is a bf16 logit.
  std::vector<float> fmax, umax;
  size_t dead = 0;
  for (size_t i = 0; i < fused.row_max.size(); ++i) {
    if (std::isinf(unfused.row_max[i])) {
      ++dead;
      EXPECT_TRUE(std::isinf(fused.row_max[i]) && fused.row_max[i] < 0 && fused.row_inv[i] == 0.0f) << "row " << i;
      continue;
    }
    fmax.push_back(fused.row_max[i]), umax.push_back(unfused.row_max[i]);
  }
  EXPECT_EQ(dead, k.dead_sample ? size_t(k.NH) * k.T : 0u) << "rows without a valid key";
  EXPECT_TRUE(close_ulp(fmax, umax, 1.0, 0.0)) << "row max";
  EXPECT_TRUE(close(fused.row_inv, unfused.row_inv, 2e-3)) << "1 / row sum";
  EXPECT_TRUE(close(fused.out, unfused.out, 1e-2)) << "out vs the unfused forward";
  EXPECT_TRUE(close(fused.dqkv, unfused.dqkv, 2e-2)) << "dqkv (the unfused backward from each saved state)";

  // Each query row's arithmetic does not depend on how many rows a block takes: 4- and 8-warp blocks, the same bits.
  for (int warps : {4, 8}) {
    const Result w = run(a, true, qkv, dout, warps);
    EXPECT_TRUE(bit_equal(w.out, fused.out)) << warps << " warps: out";
    EXPECT_TRUE(bit_equal(w.scores, fused.scores)) << warps << " warps: scores";
    EXPECT_TRUE(bit_equal(w.row_inv, fused.row_inv)) << warps << " warps: 1 / row sum";
  }

  // out against the CPU emulation of bf16 storage (runtime/ops_bf16.cpp), as test_cuda_attention checks the unfused.
  EXPECT_TRUE(close(fused.out, cpu_attention(a, qkv, dout).out, 1e-2)) << "out vs CPU";
}

// fp32 qkv / out storage around bf16 probabilities: the fused kernel reads the rounded copy of qkv the unfused
// forward makes and writes out in fp32.
TEST_P(FusedAttentionForward, Fp32InputAndOutputStorage) {
  const FusedCase& k = GetParam();
  const FusedSetup a(k);
  const auto qkv = randn(a.N * 3 * a.C, 87, 0.5f), dout = randn(a.N * a.C, 88);
  const Result fused = run(a, true, qkv, dout, 0, false), unfused = run(a, false, qkv, dout, 0, false);
  EXPECT_TRUE(close_ulp(fused.scores, unfused.scores, 1.0, 0.0)) << "saved scores";
  EXPECT_TRUE(close(fused.out, unfused.out, 1e-2)) << "out";
  EXPECT_TRUE(close(fused.dqkv, unfused.dqkv, 2e-2)) << "dqkv";
}

TEST_P(FusedAttentionForward, DropoutMaskBitForBit) {
  const FusedCase& k = GetParam();
  if (k.p == 0.0f || k.T > k.HS) GTEST_SKIP() << "needs dropout and T <= HS (a one-hot V column per key)";
  const FusedSetup a(k);
  // Q = 0 (every score 0: P uniform over the valid keys), K random, V row t = e_t (one-hot in its head's columns).
  std::vector<float> qkv(a.N * 3 * a.C, 0.0f);
  const auto kr = randn(a.N * a.C, 85, 0.5f);
  for (size_t n = 0; n < a.N; ++n)
    for (int h = 0; h < k.NH; ++h) {
      const int t = int(n % size_t(k.T));
      for (int c = 0; c < k.HS; ++c) {
        qkv[n * 3 * a.C + a.C + size_t(h) * k.HS + c] = round_to_bf16(kr[n * a.C + size_t(h) * k.HS + c]);
        qkv[n * 3 * a.C + 2 * a.C + size_t(h) * k.HS + c] = c == t ? 1.0f : 0.0f;
      }
    }
  const Result fused = run(a, true, qkv, randn(a.N * a.C, 86));
  expect_dropout_mask(k, a, "out", [&](int b, int h, int i, int j) {
    return fused.out[(size_t(b) * k.T + i) * a.C + size_t(h) * k.HS + j];
  });
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, FusedAttentionForward,
    ::testing::Values(FusedCase{2, 64, 2, 64, 0.1f, 0, 0, 0, false},      // one tile each way
                      FusedCase{3, 72, 2, 64, 0.1f, 5, 0, 0, true},       // partial second tiles, a dead sample
                      FusedCase{2, 128, 2, 128, 0.1f, 3, 1, 4, false},    // TP: heads 1, 2 of 4
                      FusedCase{2, 128, 1, 128, 0.0f, 0, 0, 0, false},    // no dropout
                      FusedCase{2, 200, 1, 256, 0.1f, 0, 0, 0, false}));  // the 1.3B head dim, 3 tiles + 8

TEST_F(CudaTest, FusedAttentionForwardRefusesWhatItDoesNotTake) {
  EXPECT_FALSE(cuda::fused_attention_forward_supported(cpu::AttentionShape{1, 64, 1, 96}));  // head dim 96
  EXPECT_FALSE(cuda::fused_attention_forward_supported(cpu::AttentionShape{1, 60, 1, 64}));  // T % 8 != 0
  EXPECT_TRUE(cuda::fused_attention_forward_supported(cpu::AttentionShape{1, 512, 8, 256}));
  const FusedSetup a(FusedCase{1, 64, 1, 64, 0.0f, 0, 0, 0, false});
  try {
    run(a, true, randn(a.N * 3 * a.C, 1), randn(a.N * a.C, 2), /*warps=*/6);
    ADD_FAILURE() << "6 warps a block must be refused";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("6 warps a block"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace erlangshen::testing
