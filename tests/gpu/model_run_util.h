// Shared by the whole-model GPU comparisons (test_model_gpu_bf16, test_model_gpu_flash): one micro-batch of the
// small config forward + backward twice (gradients accumulate) with a given storage, attention kernel, recompute
// mode and residual stream storage, its gradients zeroed first or (lazy_start) filled with NaN and then
// start_gradient_accumulation(), and the relative L2 / cosine gap between two gradient vectors.
#pragma once
#include <cmath>
#include <limits>
#include <vector>

#include "model/megatron_bert.h"
#include "model/synthetic_batch.h"
#include "runtime/config.h"

namespace erlangshen::testing {

struct ModelRun {
  std::vector<PretrainLosses> losses;
  std::vector<float> grads;
};

inline ModelRun run_model_twice(const Config& c, Exec exec, ActivationStorage storage,
                                AttentionKernel kernel = AttentionKernel::Unfused,
                                Recompute recompute = Recompute::None,
                                ActivationStorage residual = ActivationStorage::FP32, bool lazy_start = false) {
  SelfCommunicator tp("tp");
  MegatronBert<float> model(c.model, ModelHeads::Pretraining, tp, c.train.dropout, c.train.attention_dropout, exec);
  model.set_activation_storage(storage);
  model.set_residual_storage(residual);
  model.set_attention_kernel(kernel);
  model.set_recompute(recompute);
  model.initialize(c.train.seed);
  if (lazy_start) {
    ops::fill(exec, model.grads(), static_cast<int64_t>(model.num_params()), std::numeric_limits<float>::quiet_NaN());
    model.start_gradient_accumulation();
  } else {
    model.zero_grads();
  }
  const PretrainBatch batch = make_synthetic_batch(c.train.micro_batch, c.train.seq_len, c.model.vocab_size, 0.15,
                                                   c.train.seed, /*step=*/1, /*sample_base=*/4);
  const double M = static_cast<double>(batch.mlm_positions.size()), B = batch.batch;
  const RngContext rng{c.train.seed, 1, 4, /*train=*/true};
  ModelRun r;
  for (int rep = 0; rep < 2; ++rep) r.losses.push_back(model.pretrain_forward_backward(batch, rng, M, B, true));
  r.grads = model.grads_to_host();
  return r;
}

struct GradientGap {
  double rel_l2 = 0, cosine = 0;
};
inline GradientGap gradient_gap(const std::vector<float>& a, const std::vector<float>& ref) {
  double diff = 0, na = 0, nr = 0, dot = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    diff += (double(a[i]) - ref[i]) * (double(a[i]) - ref[i]);
    na += double(a[i]) * a[i];
    nr += double(ref[i]) * ref[i];
    dot += double(a[i]) * ref[i];
  }
  return GradientGap{std::sqrt(diff / nr), dot / std::sqrt(na * nr)};
}

}  // namespace erlangshen::testing
