// Device memory planning: category sizes, recompute savings and the "will not fit" message. Pure host
// arithmetic: runs without a GPU.
#include <gtest/gtest.h>

#include <cstdio>

#include "runtime/check.h"
#include "runtime/cuda/memory.h"

namespace erlangshen::cuda {
namespace {

constexpr int64_t kGiB = int64_t(1) << 30;

TrainingMemoryRequest erlangshen_1_3b(int micro_batch) {
  TrainingMemoryRequest q;
  q.params = 1257367552 + 2048 * 2048 + 2 * 2048 + 21248;  // encoder + MLM transform/bias + SOP (approximate)
  q.shape.hidden = 2048;
  q.shape.layers = 24;
  q.shape.heads_local = 8;
  q.shape.head_dim = 256;
  q.shape.ffn_local = 8192;
  q.shape.vocab_local = 21248;
  q.micro_batch = micro_batch;
  q.seq_len = 512;
  return q;
}

TEST(MemoryPlan, CategoriesFollowTheParameterCount) {
  const auto q = erlangshen_1_3b(8);
  const MemoryPlan plan = plan_training_memory(q);
  ASSERT_EQ(plan.items.size(), 7u);
  EXPECT_EQ(plan.items[0].bytes, 2 * q.params);
  EXPECT_EQ(plan.items[1].bytes, 4 * q.params);
  EXPECT_EQ(plan.items[2].bytes, 4 * q.params);
  EXPECT_EQ(plan.items[3].bytes, 8 * q.params);
  EXPECT_GT(plan.items[4].bytes, 0);
  // bf16 staging holds both operands of any one GEMM: FFN-out forward (inp N x F, W F x C), its wgrad (dout N x C,
  // inp N x F), and the vocab projection (W V x C plus the masked rows).
  const int64_t N = 8 * 512, C = 2048, F = 8192, V = 21248;
  EXPECT_GE(plan.items[5].bytes, 2 * (N * F + F * C));
  EXPECT_GE(plan.items[5].bytes, 2 * (N * C + N * F));
  EXPECT_GE(plan.items[5].bytes, 2 * (V * C));
  EXPECT_LT(plan.items[5].bytes, plan.items[4].bytes) << "staging is a small share of the activations";
  const std::string r = plan.report();
  EXPECT_NE(r.find("staging"), std::string::npos) << r;
  EXPECT_NE(r.find("master weights"), std::string::npos) << r;
  EXPECT_NE(r.find("total"), std::string::npos) << r;
}

TEST(MemoryPlan, RecomputeAndZeroShrinkThePlan) {
  auto q = erlangshen_1_3b(16);
  const int64_t none = plan_training_memory(q).total();
  q.recompute = Recompute::Selective;
  const int64_t selective = plan_training_memory(q).total();
  q.recompute = Recompute::Full;
  const int64_t full = plan_training_memory(q).total();
  EXPECT_LT(selective, none);
  EXPECT_LT(full, selective);
  q.optimizer_shards = 8;
  EXPECT_LT(plan_training_memory(q).total(), full);
  EXPECT_EQ(parse_recompute("selective"), Recompute::Selective);
  EXPECT_THROW(parse_recompute("some"), Error);
}

// train.activations=bf16: the [act] tensors (per layer ln1, ln2: N x C; qkv: N x 3C; ctx: N x C; pre, act: N x F;
// the attention probabilities B x NH x T x T, per layer or one shared block under recompute; and the shared dtmp,
// dqkv, dctx, dact, and with TP 1 dln; model/activations.h) take 2 bytes instead of 4, everything else is unchanged.
TEST(MemoryPlan, Bf16ActivationsHalveTheActTensors) {
  for (Recompute r : {Recompute::None, Recompute::Selective, Recompute::Full}) {
    auto q = erlangshen_1_3b(16);
    const int64_t N = int64_t(16) * 512, C = 2048, F = 8192, L = 24;
    const int64_t fp32 = activation_bytes(q.shape, 16, 512, r);
    q.shape.act_bytes = 2;
    const int64_t bf16 = activation_bytes(q.shape, 16, 512, r);
    const int64_t live_layers = r == Recompute::Full ? 1 : L;
    const int64_t blocks = r == Recompute::None ? L : 1;
    const int64_t probs = blocks * N * 8 * 512;  // B NH T T: 8 heads
    // ... less the bf16 copy of the row-parallel outputs (N x C) that bf16 storage adds, and the room for the row
    // statistics each bf16 probability block carries (a float2 a row of B NH T: the attention's saved scores)
    EXPECT_EQ(fp32 - bf16,
              2 * (live_layers * (6 * N * C + 2 * N * F) + probs + N * F + 6 * N * C) - 2 * N * C - blocks * N * 8 * 8)
        << recompute_name(r);
  }
  // The larger micro-batch that fits in 80 GiB is what bf16 storage is for.
  auto q = erlangshen_1_3b(8);
  const int fp32_fit = largest_fitting_micro_batch(q, 80 * kGiB);
  q.shape.act_bytes = 2;
  const int bf16_fit = largest_fitting_micro_batch(q, 80 * kGiB);
  EXPECT_GT(bf16_fit, fp32_fit);
  std::printf("1.3B, seq 512, 80 GiB: largest micro-batch %d with fp32 storage, %d with bf16\n", fp32_fit, bf16_fit);
}

// train.residual=bf16: the residual stream (the embeddings' output and every layer's x1, x2: N x C each; under full
// recompute every layer's input x2 plus the live layer's x1, x2) and its gradient (N x C) take 2 bytes instead of 4;
// nothing else changes.
TEST(MemoryPlan, Bf16ResidualStreamHalvesTheStream) {
  const int64_t N = int64_t(16) * 512, C = 2048, L = 24;
  for (Recompute r : {Recompute::None, Recompute::Selective, Recompute::Full}) {
    auto q = erlangshen_1_3b(16);
    q.shape.act_bytes = 2;
    const int64_t fp32 = activation_bytes(q.shape, 16, 512, r);
    q.shape.residual_bytes = 2;
    const int64_t bf16 = activation_bytes(q.shape, 16, 512, r);
    const int64_t stream = (r == Recompute::Full ? (L + 2 + 1) * N * C : (2 * L + 1) * N * C) + N * C;
    EXPECT_EQ(fp32 - bf16, 2 * stream) << recompute_name(r);
  }
  auto q = erlangshen_1_3b(8);
  q.shape.act_bytes = 2;
  const int fp32_fit = largest_fitting_micro_batch(q, 80 * kGiB);
  q.shape.residual_bytes = 2;
  const int bf16_fit = largest_fitting_micro_batch(q, 80 * kGiB);
  EXPECT_GT(bf16_fit, fp32_fit);
  std::printf("1.3B, seq 512, 80 GiB, bf16 activations: largest micro-batch %d with an fp32 residual stream, %d with "
              "bf16\n",
              fp32_fit, bf16_fit);
}

// train.attention=flash: per layer 2 floats per query row and head instead of the (B, NH, T, T) probabilities, no
// recomputed probability block, and the fused kernels' scratch (2 N C + B NH T floats) instead of the unfused
// attention's (2 B NH T^2 + 2 N C).
TEST(MemoryPlan, FlashAttentionSavesTheProbabilities) {
  const int64_t B = 16, T = 512, NH = 8, L = 24;
  for (Recompute r : {Recompute::None, Recompute::Selective, Recompute::Full}) {
    auto q = erlangshen_1_3b(int(B));
    const int64_t unfused = activation_bytes(q.shape, int(B), int(T), r);
    q.shape.flash_attention = true;
    const int64_t flash = activation_bytes(q.shape, int(B), int(T), r);
    const int64_t saved_unfused = r == Recompute::None ? L * B * NH * T * T : B * NH * T * T;  // one shared block
    const int64_t saved_flash = (r == Recompute::Full ? 1 : L) * B * NH * T * 2;
    EXPECT_EQ(unfused - flash, 4 * (saved_unfused - saved_flash + 2 * B * NH * T * T - B * NH * T))
        << recompute_name(r);
  }
  auto q = erlangshen_1_3b(8);
  q.shape.act_bytes = 2;
  const int bf16_fit = largest_fitting_micro_batch(q, 80 * kGiB);
  q.shape.flash_attention = true;
  const int flash_fit = largest_fitting_micro_batch(q, 80 * kGiB);
  EXPECT_GT(flash_fit, bf16_fit);
  std::printf("1.3B, seq 512, 80 GiB, bf16 storage: largest micro-batch %d unfused attention, %d flash\n", bf16_fit,
              flash_fit);
}

TEST(MemoryPlan, TooLargeMicroBatchNamesTheMicroBatchThatFits) {
  const int64_t h100 = 79 * kGiB;
  const auto q = erlangshen_1_3b(256);
  const int fit = largest_fitting_micro_batch(q, h100);
  ASSERT_GE(fit, 1);
  ASSERT_LT(fit, 256);
  try {
    check_fits(q, h100);
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("train.micro_batch=" + std::to_string(fit)), std::string::npos) << msg;
  }
  auto ok = q;
  ok.micro_batch = fit;
  EXPECT_NO_THROW(check_fits(ok, h100));
}

TEST(MemoryPlan, NothingFitsNamesRecomputeOrSharding) {
  auto q = erlangshen_1_3b(1);
  // Enough for the parameter state and a full-recompute micro-batch, not for every saved activation.
  q.seq_len = 512;
  const int64_t state = plan_training_memory(q).total() - plan_training_memory(q).items[4].bytes;
  auto full = q;
  full.recompute = Recompute::Full;
  const int64_t available = state + plan_training_memory(full).items[4].bytes + 1;
  try {
    check_fits(q, available);
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("train.recompute="), std::string::npos) << e.what();
  }
  try {
    check_fits(q, 4 * kGiB);
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("parallel.tp"), std::string::npos) << e.what();
  }
}

TEST(MemoryPlan, HeadroomHintNamesALargerMicroBatchOnlyWhenThereIsRoom) {
  const int64_t h100 = int64_t(79) * kGiB;
  const auto small = erlangshen_1_3b(8);  // ~37 GiB planned: room for about 30
  const std::string hint = headroom_hint(small, h100);
  const int fit = largest_fitting_micro_batch(small, h100, 32);
  ASSERT_GE(fit, 16);
  EXPECT_NE(hint.find("train.micro_batch=" + std::to_string(fit)), std::string::npos) << hint;
  EXPECT_EQ(headroom_hint(erlangshen_1_3b(fit), h100), "") << "no hint at the largest micro-batch";
  EXPECT_EQ(headroom_hint(erlangshen_1_3b(4 * fit), h100), "") << "no hint when it does not fit at all";
}

}  // namespace
}  // namespace erlangshen::cuda
