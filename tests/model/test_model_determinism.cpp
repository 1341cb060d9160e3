// Dropout determinism: the same seed gives the same bits (losses and gradients identical run to run);
// across thread counts only the GEMM blocking changes, so results agree to rounding; a different step key
// gives different masks.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>

#include "model/megatron_bert.h"
#include "model/synthetic_batch.h"
#include "test_support.h"

namespace erlangshen {
namespace {

struct RunResult {
  PretrainLosses losses;
  std::vector<float> grads;
};

RunResult run_once(int threads, int64_t step) {
  omp_set_num_threads(threads);
  Config c = testing::small_config();
  SelfCommunicator tp;
  MegatronBert<float> model(c.model, ModelHeads::Pretraining, tp, 0.1, 0.1);
  model.initialize(21);
  PretrainBatch batch = make_synthetic_batch(4, 32, c.model.vocab_size, 0.15, 3, 0, 0);
  model.zero_grads();
  RunResult r;
  r.losses = model.pretrain_forward_backward(batch, RngContext{8, step, 0, true}, 10.0, 4.0, true);
  r.grads.assign(model.grads(), model.grads() + model.num_params());
  return r;
}

TEST(Determinism, SameSeedSameBits) {
  const int saved = omp_get_max_threads();
  RunResult a = run_once(2, 1), b = run_once(2, 1), one = run_once(1, 1), c = run_once(2, 2);
  omp_set_num_threads(saved);
  EXPECT_EQ(a.losses.mlm_sum, b.losses.mlm_sum);
  EXPECT_EQ(a.losses.sop_sum, b.losses.sop_sum);
  ASSERT_EQ(a.grads.size(), b.grads.size());
  size_t differing = 0;
  double max_diff = 0, scale = 0;
  for (size_t i = 0; i < a.grads.size(); ++i) {
    differing += a.grads[i] != b.grads[i];
    max_diff = std::max(max_diff, std::abs(double(a.grads[i]) - one.grads[i]));
    scale = std::max(scale, std::abs(double(a.grads[i])));
  }
  EXPECT_EQ(differing, 0u) << "two identical runs gave different gradients";
  EXPECT_NEAR(a.losses.mlm_sum, one.losses.mlm_sum, 1e-5 * a.losses.mlm_sum);
  EXPECT_LT(max_diff, 1e-5 * scale) << "1 vs 2 threads";
  EXPECT_NE(a.losses.mlm_sum, c.losses.mlm_sum) << "a different step must draw different dropout masks";
}

}  // namespace
}  // namespace erlangshen
