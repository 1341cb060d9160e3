// Activation recompute (train.recompute): selective and full recompute rebuild saved tensors during backward
// from the same inputs and the same dropout keys, so losses and every gradient must equal the no-recompute run
// bit for bit (dropout on, two micro-batches accumulated), while the activation arena shrinks.
#include <gtest/gtest.h>

#include <cstring>

#include "model/megatron_bert.h"
#include "model/synthetic_batch.h"
#include "test_support.h"

namespace erlangshen {
namespace {

struct RecomputeRun {
  std::vector<PretrainLosses> losses;
  std::vector<float> grads;
  size_t activation_bytes = 0;
};

RecomputeRun run_with(Recompute mode) {
  Config c = testing::small_config(64, 3, 4, 256, 500);
  SelfCommunicator tp;
  MegatronBert<float> model(c.model, ModelHeads::Pretraining, tp, 0.1, 0.1);
  model.initialize(5);
  model.reserve(4, 32);
  model.set_recompute(mode);  // after a reserve: must re-plan the arena
  model.zero_grads();
  RecomputeRun r;
  for (int micro = 0; micro < 2; ++micro) {
    PretrainBatch batch = make_synthetic_batch(4, 32, c.model.vocab_size, 0.15, 11 + micro, 0, 0);
    batch.attention_mask[3 * 32 + 30] = batch.attention_mask[3 * 32 + 31] = 0;  // padding in the last sample
    r.losses.push_back(model.pretrain_forward_backward(batch, RngContext{3, 7, 4 * micro, true}, 20.0, 8.0, true));
  }
  r.grads.assign(model.grads(), model.grads() + model.num_params());
  r.activation_bytes = model.activation_bytes();
  return r;
}

void expect_same_bits(const RecomputeRun& a, const RecomputeRun& b, const char* what) {
  ASSERT_EQ(a.losses.size(), b.losses.size());
  for (size_t i = 0; i < a.losses.size(); ++i) {
    EXPECT_EQ(a.losses[i].mlm_sum, b.losses[i].mlm_sum) << what;
    EXPECT_EQ(a.losses[i].sop_sum, b.losses[i].sop_sum) << what;
  }
  ASSERT_EQ(a.grads.size(), b.grads.size());
  size_t differing = 0;
  for (size_t i = 0; i < a.grads.size(); ++i) differing += std::memcmp(&a.grads[i], &b.grads[i], sizeof(float)) != 0;
  EXPECT_EQ(differing, 0u) << what << ": gradients differ from the run without recompute";
}

TEST(Recompute, SameBitsAsKeepingEverything) {
  const RecomputeRun none = run_with(Recompute::None);
  const RecomputeRun selective = run_with(Recompute::Selective);
  const RecomputeRun full = run_with(Recompute::Full);
  expect_same_bits(none, selective, "selective");
  expect_same_bits(none, full, "full");
  double norm = 0;
  for (float g : none.grads) norm += double(g) * g;
  EXPECT_GT(norm, 0.0);
}

TEST(Recompute, ShrinksTheActivationArena) {
  const size_t none = run_with(Recompute::None).activation_bytes;
  const size_t selective = run_with(Recompute::Selective).activation_bytes;
  const size_t full = run_with(Recompute::Full).activation_bytes;
  // 3 layers, B 4, T 32, 4 heads: selective drops 2 of 3 probability blocks (+ masks), full 2 of 3 layer sets
  const size_t probs_block = 4 * 4 * 32 * 32 * (sizeof(float) + 1);
  EXPECT_EQ(none - selective, 2 * probs_block);
  EXPECT_LT(full, selective);
  EXPECT_GT(none - full, 2 * probs_block);
}

TEST(Recompute, ConfigKey) {
  EXPECT_EQ(parse_recompute("none"), Recompute::None);
  EXPECT_EQ(parse_recompute("selective"), Recompute::Selective);
  EXPECT_EQ(parse_recompute("full"), Recompute::Full);
  EXPECT_THROW(parse_recompute("partial"), Error);
  EXPECT_STREQ(recompute_name(Recompute::Full), "full");
}

}  // namespace
}  // namespace erlangshen
