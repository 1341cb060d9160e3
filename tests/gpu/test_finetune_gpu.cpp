// Fine-tuning on the GPU (train.device=cuda for `finetune` / `evaluate` / `predict`): the same FinetuneTrainer run
// (PCL loss, dropout on, dev evaluation every 2 steps, best-by-macro-F1 weights restored at the end) on the CPU and
// on the GPU with fp32 GEMMs gives dev losses and final weights within 1e-4 relative, and predict_pairs returns
// the same logits. The logits cross the host boundary every micro-batch (loss on the host) and the best weights are
// downloaded and uploaded again, so a missed copy shows up as a different dev loss or different final weights.
// Skips without a GPU.
#include <cmath>
#include <random>
#include <vector>

#include "model/finetune_trainer.h"
#include "tests/gpu/gpu_model_config.h"
#include "tests/gpu/gpu_test_util.h"

namespace erlangshen::testing {
namespace {

// The small model with a 3-class classifier, a 300-token vocabulary and FFN 128; PCL loss.
Config finetune_config() {
  Config c = small_gpu_model_config();
  c.model.ffn = 128;
  c.model.vocab_size = 300;
  c.model.num_classes = 3;
  c.data.num_classes = 3;
  c.data.labels = {"0", "1", "2"};
  c.train.epochs = 2;
  c.train.eval_every = 2;
  c.train.warmup_steps = 1;
  c.train.seed = 99;
  c.loss.type = "pcl";
  return c;
}

// Pairs of random ids with lengths 6..30 (so micro-batches pad differently) and labels 0..2.
std::vector<data::EncodedPair> random_pairs(int n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::vector<data::EncodedPair> out(n);
  for (auto& p : out) {
    const int len = 6 + static_cast<int>(gen() % 25), split = len / 2;
    p.ids.resize(len);
    p.types.resize(len);
    for (int i = 0; i < len; ++i) p.ids[i] = 5 + static_cast<int>(gen() % 290), p.types[i] = i >= split;
    p.label = static_cast<int32_t>(gen() % 3);
  }
  return out;
}

struct Finetuned {
  std::vector<double> dev_losses;
  std::vector<float> params, test_logits;
};

Finetuned finetune(Exec exec) {
  const Config c = finetune_config();
  const std::vector<data::EncodedPair> train = random_pairs(24, 1), dev = random_pairs(10, 2), test = random_pairs(7, 3);
  SelfCommunicator tp("tp");
  Logger quiet(1, 2);
  ClassificationLoss loss(c.loss, 3, {0.5, 0.3, 0.2});
  FinetuneTrainer trainer(c, tp, quiet, loss, /*pad_id=*/0, exec);
  const FinetuneSummary s = trainer.run(train, dev);
  Finetuned out;
  for (const FinetuneEval& e : s.evals) out.dev_losses.push_back(e.loss);
  out.params = trainer.model().params_to_host();
  out.test_logits = predict_pairs(trainer.model(), test, 3, 0).logits;
  return out;
}

TEST_F(CudaTest, FinetuneOnTheGpuMatchesTheCpu) {
  const Finetuned cpu_run = finetune(cpu()), gpu_run = finetune(gpu());
  ASSERT_EQ(gpu_run.dev_losses.size(), cpu_run.dev_losses.size());
  ASSERT_GE(cpu_run.dev_losses.size(), 3u);
  for (size_t i = 0; i < cpu_run.dev_losses.size(); ++i)
    EXPECT_LT(std::fabs(gpu_run.dev_losses[i] - cpu_run.dev_losses[i]) / std::fabs(cpu_run.dev_losses[i]), 1e-4)
        << "evaluation " << i << ": gpu " << gpu_run.dev_losses[i] << " cpu " << cpu_run.dev_losses[i];
  EXPECT_TRUE(close(gpu_run.params, cpu_run.params, 1e-4)) << "final (best) weights";
  EXPECT_TRUE(close(gpu_run.test_logits, cpu_run.test_logits, 1e-4)) << "predict_pairs logits";
}

}  // namespace
}  // namespace erlangshen::testing
