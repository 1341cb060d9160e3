// MegatronBert::start_gradient_accumulation(): a step's first backward overwrites the encoder layers' GEMM weight
// gradients instead of adding to zeros (model/megatron_bert.h). Whatever the gradient buffer held before, two
// accumulated micro-batches after it must give the gradients of zero_grads() and the same two micro-batches, bit for
// bit: the buffer is filled with NaN first, so a gradient range that is neither zeroed nor overwritten keeps a NaN
// and an overwrite that came too late (after an addition) loses the first micro-batch. A third pass after a fresh
// start checks that the flag does not outlive one backward. (The CUDA GEMMs' beta-0 path: tests/gpu/.)
// Also GradSqSumBySegment (model/adamw.h): the gradient norm's sums taken segment by segment as the backward makes
// them final equal grad_sq_sum_local's after it, bit for bit.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "model/adamw.h"
#include "model/megatron_bert.h"
#include "model/synthetic_batch.h"
#include "test_support.h"

namespace erlangshen {
namespace {

std::vector<float> accumulate_two(MegatronBert<float>& model, bool lazy_start, ActivationStorage storage) {
  model.set_activation_storage(storage);
  float* g = model.grads();
  for (size_t i = 0; i < model.num_params(); ++i) g[i] = std::numeric_limits<float>::quiet_NaN();
  if (lazy_start) model.start_gradient_accumulation();
  else model.zero_grads();
  for (int micro = 0; micro < 2; ++micro) {
    PretrainBatch batch = make_synthetic_batch(4, 32, model.config().vocab_size, 0.15, 21 + micro, 0, 0);
    model.pretrain_forward_backward(batch, RngContext{3, 2, 4 * micro, true}, 20.0, 8.0, true);
  }
  return std::vector<float>(g, g + model.num_params());
}

TEST(GradientAccumulation, FirstBackwardOverwritesTheLayerWeightGradients) {
  for (ActivationStorage storage : {ActivationStorage::FP32, ActivationStorage::BF16}) {
    SCOPED_TRACE(activation_storage_name(storage));
    Config c = testing::small_config(64, 2, 4, 256, 500);
    SelfCommunicator tp_a, tp_b;
    MegatronBert<float> zeroed(c.model, ModelHeads::Pretraining, tp_a, 0.1, 0.1),
        lazy(c.model, ModelHeads::Pretraining, tp_b, 0.1, 0.1);
    zeroed.initialize(8);
    lazy.initialize(8);
    const std::vector<float> want = accumulate_two(zeroed, false, storage);
    for (int round = 0; round < 2; ++round) {  // the second: a new step on the same model
      const std::vector<float> got = accumulate_two(lazy, true, storage);
      size_t nan = 0, differing = 0;
      for (size_t i = 0; i < want.size(); ++i) {
        nan += std::isnan(got[i]);
        differing += got[i] != want[i];
      }
      EXPECT_EQ(nan, 0u) << "round " << round << ": gradients neither zeroed nor written";
      EXPECT_EQ(differing, 0u) << "round " << round;
    }
    double norm = 0;
    for (float v : want) norm += double(v) * v;
    EXPECT_GT(norm, 0.0);
  }
}

TEST(GradientNorm, SummedBySegmentDuringTheBackwardEqualsTheSumAfterIt) {
  Config c = testing::small_config(64, 2, 4, 256, 500);
  SelfCommunicator tp;
  MegatronBert<float> model(c.model, ModelHeads::Pretraining, tp, 0.1, 0.1);
  model.initialize(8);
  const Exec cpu;
  GradSqSumBySegment<float> by_segment(model.table(), cpu);
  for (int step = 0; step < 2; ++step) {
    by_segment.begin();
    EXPECT_THROW(by_segment.total(cpu), Error) << "a total before any segment";
    model.start_gradient_accumulation();
    int segments = 0;
    model.set_grad_ready_hook([&](size_t b, size_t e) {
      by_segment.add(cpu, model.grads(), b, e);
      ++segments;
    });
    PretrainBatch batch = make_synthetic_batch(4, 32, model.config().vocab_size, 0.15, 30 + step, 0, 0);
    model.pretrain_forward_backward(batch, RngContext{3, 1 + step, 0, true}, 20.0, 8.0, true);
    model.set_grad_ready_hook(nullptr);
    EXPECT_EQ(segments, static_cast<int>(model.grad_ready_segments().size()));
    const double want = grad_sq_sum_local(cpu, model.table(), model.grads(), 0, model.num_params());
    const double got = by_segment.total(cpu);
    EXPECT_GT(want, 0.0);
    EXPECT_EQ(std::memcmp(&got, &want, sizeof got), 0) << got << " vs " << want;
  }
}

}  // namespace
}  // namespace erlangshen
