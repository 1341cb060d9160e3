// bf16 activation storage (train.activations=bf16; runtime/act.h) on the CPU backend's emulation: the model with
// its [act] tensors (model/activations.h) in bf16 against the same model in fp32 storage. Rounding a stored
// tensor changes each element by at most 2^-9 relative (~2e-3), independently per element, so the gradients of this
// 3-layer model move by a few 1e-3 in relative L2 norm; measured here 2.4e-3 (printed). The losses at
// initialisation sit near log(V) and hardly depend on the hidden states (measured 1.4e-5 relative). The bounds
// leave a factor of ~5 over the gradients' measurement; a wrong buffer, a missed rounding or a skipped op moves
// them by far more. A bf16 residual stream (train.residual=bf16) on top rounds every residual sum, and every
// addition into the stream's gradient, once: measured here (printed) against the bf16 activations with an fp32
// stream.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <memory>
#include <utility>

#include "model/megatron_bert.h"
#include "model/synthetic_batch.h"
#include "model/trainer.h"
#include "test_support.h"

namespace erlangshen {
namespace {

struct StorageRun {
  std::vector<PretrainLosses> losses;
  std::vector<float> grads;
  size_t activation_bytes = 0;
};

StorageRun run_with(ActivationStorage storage, Recompute recompute = Recompute::None,
                    ActivationStorage residual = ActivationStorage::FP32) {
  Config c = testing::small_config(64, 3, 4, 256, 500);
  SelfCommunicator tp;
  MegatronBert<float> model(c.model, ModelHeads::Pretraining, tp, 0.1, 0.1);
  model.initialize(17);
  model.set_recompute(recompute);
  model.set_activation_storage(storage);
  model.set_residual_storage(residual);
  model.zero_grads();
  StorageRun r;
  for (int micro = 0; micro < 2; ++micro) {  // two micro-batches accumulated, dropout on, padding in one sample
    PretrainBatch batch = make_synthetic_batch(4, 32, c.model.vocab_size, 0.15, 31 + micro, 0, 0);
    batch.attention_mask[2 * 32 + 29] = batch.attention_mask[2 * 32 + 30] = batch.attention_mask[2 * 32 + 31] = 0;
    r.losses.push_back(model.pretrain_forward_backward(batch, RngContext{5, 3, 4 * micro, true}, 20.0, 8.0, true));
  }
  r.grads.assign(model.grads(), model.grads() + model.num_params());
  r.activation_bytes = model.activation_bytes();
  return r;
}

// Relative L2 distance and cosine of two gradient vectors.
std::pair<double, double> compare_grads(const std::vector<float>& ref, const std::vector<float>& got) {
  double diff = 0, norm = 0, dot = 0, norm_got = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double a = ref[i], b = got[i];
    diff += (a - b) * (a - b);
    norm += a * a;
    norm_got += b * b;
    dot += a * b;
  }
  EXPECT_GT(norm, 0.0);
  return {std::sqrt(diff / norm), dot / std::sqrt(norm * norm_got)};
}

TEST(Bf16Activations, CloseToFp32StorageButNotTheSame) {
  const StorageRun fp32 = run_with(ActivationStorage::FP32), half = run_with(ActivationStorage::BF16);
  for (size_t i = 0; i < fp32.losses.size(); ++i) {
    const double mlm = fp32.losses[i].mlm_sum, sop = fp32.losses[i].sop_sum;
    EXPECT_NEAR(half.losses[i].mlm_sum, mlm, 1e-4 * mlm) << "micro-batch " << i;
    EXPECT_NEAR(half.losses[i].sop_sum, sop, 1e-4 * sop) << "micro-batch " << i;
    EXPECT_EQ(half.losses[i].mlm_count, fp32.losses[i].mlm_count);
  }
  EXPECT_NE(half.losses[0].mlm_sum, fp32.losses[0].mlm_sum) << "bf16 storage had no effect";
  const auto [rel, cosine] = compare_grads(fp32.grads, half.grads);
  EXPECT_LT(rel, 1e-2) << "relative L2 difference of the gradients";
  EXPECT_GT(cosine, 0.9999);
  std::printf("bf16 vs fp32 storage: loss %.3g relative, gradients %.3g relative L2, cosine %.6f\n",
              std::abs(half.losses[0].mlm_sum - fp32.losses[0].mlm_sum) / fp32.losses[0].mlm_sum, rel, cosine);
}

// The bf16 residual stream on top of bf16 activations: each residual sum and each addition into its gradient rounded
// once (2^-9 relative at most), so the gradients move by about twice as much as the bf16 activations moved them, and
// no more (measured: printed).
TEST(Bf16ResidualStream, CloseToTheFp32StreamButNotTheSame) {
  const StorageRun fp32 = run_with(ActivationStorage::FP32),
                   fp32_stream = run_with(ActivationStorage::BF16, Recompute::None, ActivationStorage::FP32),
                   bf16_stream = run_with(ActivationStorage::BF16, Recompute::None, ActivationStorage::BF16);
  for (size_t i = 0; i < fp32.losses.size(); ++i) {
    const double mlm = fp32.losses[i].mlm_sum;
    EXPECT_NEAR(bf16_stream.losses[i].mlm_sum, mlm, 1e-4 * mlm) << "micro-batch " << i;
  }
  EXPECT_NE(bf16_stream.losses[0].mlm_sum, fp32_stream.losses[0].mlm_sum) << "the bf16 stream had no effect";
  const auto [rel_stream, cos_stream] = compare_grads(fp32_stream.grads, bf16_stream.grads);
  const auto [rel_all, cos_all] = compare_grads(fp32.grads, bf16_stream.grads);
  EXPECT_GT(rel_stream, 0.0);
  EXPECT_LT(rel_stream, 1e-2) << "against bf16 activations with an fp32 stream";
  EXPECT_LT(rel_all, 1e-2) << "against fp32 storage";
  EXPECT_GT(cos_all, 0.9999);
  std::printf("bf16 residual stream: gradients %.3g relative L2 from the fp32 stream (bf16 activations), %.3g from "
              "fp32 storage, cosine %.6f\n",
              rel_stream, rel_all, cos_all);
}

// Recompute rebuilds the bf16 tensors from the same inputs and keys: the same bits as keeping them (with the
// residual stream in fp32 and in bf16).
TEST(Bf16Activations, RecomputeGivesTheSameBits) {
  for (ActivationStorage residual : {ActivationStorage::FP32, ActivationStorage::BF16}) {
    const StorageRun none = run_with(ActivationStorage::BF16, Recompute::None, residual);
    for (Recompute r : {Recompute::Selective, Recompute::Full}) {
      const StorageRun other = run_with(ActivationStorage::BF16, r, residual);
      for (size_t i = 0; i < none.losses.size(); ++i) EXPECT_EQ(other.losses[i].mlm_sum, none.losses[i].mlm_sum);
      ASSERT_EQ(other.grads.size(), none.grads.size());
      EXPECT_EQ(std::memcmp(other.grads.data(), none.grads.data(), none.grads.size() * sizeof(float)), 0)
          << recompute_name(r) << ", residual stream " << activation_storage_name(residual);
    }
  }
}

// A bf16 residual stream halves the embeddings' output, every layer's x1 and x2 and the stream's gradient (N x C
// each): 2 bytes per element.
TEST(Bf16ResidualStream, ArenaShrinksByHalfOfTheStream) {
  const size_t N = 4 * 32, C = 64, L = 3;
  EXPECT_EQ(run_with(ActivationStorage::BF16).activation_bytes -
                run_with(ActivationStorage::BF16, Recompute::None, ActivationStorage::BF16).activation_bytes,
            (2 * L + 2) * N * C * 2);
}

// The arena shrinks by exactly half of the [act] tensors: per layer ln1, ln2, ctx (N x C), qkv (N x 3C), pre, act
// (N x F), the attention probabilities (B x NH x T x T), and the shared dtmp, dctx, dln (N x C), dqkv (N x 3C), dact
// (N x F): 2 bytes per element saved (all sizes here are multiples of the 64-byte alignment). (TP 1: C_local = C.)
TEST(Bf16Activations, ArenaShrinksByHalfOfTheActTensors) {
  const size_t N = 4 * 32, C = 64, F = 256, L = 3, probs = 4 * 4 * 32 * 32;  // B NH T T
  // ... less the bf16 row-parallel output buffer (N x C) it adds with TP 1
  const size_t saved = (L * (6 * N * C + 2 * N * F + probs) + N * F + 6 * N * C) * 2 - N * C * 2;
  EXPECT_EQ(run_with(ActivationStorage::FP32).activation_bytes - run_with(ActivationStorage::BF16).activation_bytes,
            saved);
}

// Fine-tuning's path (pooler + classifier) over the bf16 encoder: logits and gradients close to fp32 storage's, by
// the same bound as pretraining (measured: printed).
TEST(Bf16Activations, ClassificationCloseToFp32Storage) {
  Config c = testing::small_config(64, 2, 4, 256, 500);
  c.model.num_classes = 3;
  const PretrainBatch batch = make_synthetic_batch(4, 32, c.model.vocab_size, 0.0, 9, 0, 0);
  const EncoderInputs in{4, 32, batch.input_ids.data(), batch.token_types.data(), batch.attention_mask.data()};
  const std::vector<float> dlogits = {0.3f, -1.2f, 0.7f, 0.5f, 0.1f, -0.4f, -0.9f, 1.1f, 0.2f, -0.3f, 0.6f, -0.8f};
  auto run = [&](ActivationStorage storage, std::vector<float>& logits) {
    SelfCommunicator tp;
    MegatronBert<float> model(c.model, ModelHeads::Classification, tp, 0.1, 0.1);
    model.set_activation_storage(storage);
    model.initialize(4);
    model.zero_grads();
    logits.assign(12, 0.0f);
    model.classify_forward(in, RngContext{5, 2, 0, true}, logits.data());
    model.classify_backward(dlogits.data());
    return std::vector<float>(model.grads(), model.grads() + model.num_params());
  };
  std::vector<float> l32, l16;
  const std::vector<float> g32 = run(ActivationStorage::FP32, l32), g16 = run(ActivationStorage::BF16, l16);
  double dl = 0, nl = 0, dg = 0, ng = 0;
  for (size_t i = 0; i < l32.size(); ++i) dl += (l16[i] - l32[i]) * (l16[i] - l32[i]), nl += l32[i] * l32[i];
  for (size_t i = 0; i < g32.size(); ++i)
    dg += (g16[i] - g32[i]) * (double(g16[i]) - g32[i]), ng += g32[i] * double(g32[i]);
  ASSERT_GT(nl, 0.0);
  ASSERT_GT(ng, 0.0);
  EXPECT_GT(dg, 0.0) << "bf16 storage had no effect";
  EXPECT_LT(std::sqrt(dl / nl), 1e-2) << "logits";
  EXPECT_LT(std::sqrt(dg / ng), 1e-2) << "gradients";
  std::printf("classification, bf16 vs fp32 storage: logits %.3g, gradients %.3g relative L2\n", std::sqrt(dl / nl),
              std::sqrt(dg / ng));
}

// The bf16 compute copy of the weights (used by the encoder's GEMMs under bf16 storage) must follow every write:
// a model whose parameters change after a step (through params(), param() or upload_params) computes exactly what
// a model that had those parameters from the start computes.
TEST(Bf16Activations, ComputeWeightsFollowEveryParameterWrite) {
  Config c = testing::small_config(64, 2, 4, 256, 500);
  const PretrainBatch batch = make_synthetic_batch(4, 32, c.model.vocab_size, 0.15, 5, 0, 0);
  auto make = [&](SelfCommunicator& tp) {
    auto m = std::make_unique<MegatronBert<float>>(c.model, ModelHeads::Pretraining, tp, 0.0, 0.0);
    m->set_activation_storage(ActivationStorage::BF16);
    m->initialize(23);
    return m;
  };
  auto step = [&](MegatronBert<float>& m) {
    m.zero_grads();
    return m.pretrain_forward_backward(batch, RngContext{1, 1, 0, false}, 20.0, 4.0, true).mlm_sum;
  };
  using Write = std::function<void(MegatronBert<float>&)>;
  const std::vector<std::pair<const char*, Write>> writes = {
      {"params()",
       [](MegatronBert<float>& m) {
         for (size_t i = 0; i < m.num_params(); ++i) m.params()[i] *= 1.5f;
       }},
      {"param(name)",
       [](MegatronBert<float>& m) {
         float* w = m.param("bert.encoder.layer.1.intermediate.dense.weight");
         const size_t n = m.table().at("bert.encoder.layer.1.intermediate.dense.weight").numel;
         for (size_t i = 0; i < n; ++i) w[i] = -w[i];
       }},
      {"upload_params", [](MegatronBert<float>& m) {
         std::vector<float> host = m.params_to_host();
         for (float& v : host) v *= 0.5f;
         m.upload_params(host.data());
       }}};
  for (const auto& [what, write] : writes) {
    SelfCommunicator tp_a, tp_b;
    auto stepped = make(tp_a), fresh = make(tp_b);
    const double before = step(*stepped);  // refreshes the compute copy from the initial weights
    write(*stepped);
    write(*fresh);
    const double after = step(*stepped);
    EXPECT_NE(after, before) << what << ": the write changed nothing";
    EXPECT_EQ(after, step(*fresh)) << what << ": the stepped model computed with stale bf16 weights";
  }
}

// The trainer's AdamW rewrites the bf16 compute copy in its update pass (no separate refresh before the next
// forward): training must compute exactly what it computes when every step refreshes the copy from the fp32
// weights (params() marks it stale). A copy left stale, or written from other values, changes step 2's loss.
TEST(Bf16Activations, AdamWRewritesTheComputeCopyAsTheRefreshWould) {
  Config c = testing::small_config(64, 2, 4, 256, 500);
  c.train.activations = "bf16";
  const PretrainBatch batch = make_synthetic_batch(4, 32, c.model.vocab_size, 0.15, 9, 0, 0);
  Logger quiet(1, 2);  // not rank 0: no progress lines
  auto train = [&](bool refresh_every_step) {
    SelfCommunicator tp, dp;
    testing::FixedDataSource data({batch});
    PretrainTrainer trainer(c, TrainerGroups{&tp, &dp}, data, quiet);
    std::vector<double> losses;
    for (int s = 0; s < 4; ++s) {
      if (refresh_every_step) trainer.model().params();  // marks the compute copy stale
      losses.push_back(trainer.train_step().loss);
    }
    const MegatronBert<float>& m = trainer.model();
    std::vector<float> params(m.params(), m.params() + m.num_params());
    return std::make_pair(losses, params);
  };
  const auto fused = train(false), refreshed = train(true);
  EXPECT_NE(fused.first[0], fused.first[3]) << "the steps changed nothing";
  for (int s = 0; s < 4; ++s) EXPECT_EQ(fused.first[s], refreshed.first[s]) << "step " << s + 1;
  EXPECT_EQ(std::memcmp(fused.second.data(), refreshed.second.data(), sizeof(float) * fused.second.size()), 0);
}

// train.residual reaches the trainer's model: the stream in bf16 and the arena smaller by half of it.
TEST(Bf16ResidualStream, TheTrainerTakesItFromTheConfig) {
  Config c = testing::small_config(64, 2, 4, 256, 500);
  c.train.activations = "bf16";
  const PretrainBatch batch = make_synthetic_batch(4, 32, c.model.vocab_size, 0.15, 9, 0, 0);
  Logger quiet(1, 2);
  auto arena_bytes = [&](const char* residual) {
    c.train.residual = residual;
    SelfCommunicator tp, dp;
    testing::FixedDataSource data({batch});
    PretrainTrainer trainer(c, TrainerGroups{&tp, &dp}, data, quiet);
    EXPECT_EQ(activation_storage_name(trainer.model().residual_storage()), std::string(residual));
    trainer.train_step();
    return trainer.model().activation_bytes();
  };
  const size_t fp32 = arena_bytes("fp32"), bf16 = arena_bytes("bf16");
  EXPECT_EQ(fp32 - bf16, size_t(2 * 2 + 2) * c.train.micro_batch * c.train.seq_len * 64 * 2);
}

TEST(Bf16Activations, DoubleModelsRefuseIt) {
  Config c = testing::small_config();
  SelfCommunicator tp;
  MegatronBert<double> model(c.model, ModelHeads::Pretraining, tp, 0.0, 0.0);
  EXPECT_THROW(model.set_activation_storage(ActivationStorage::BF16), Error);
  EXPECT_THROW(model.set_residual_storage(ActivationStorage::BF16), Error);
}

}  // namespace
}  // namespace erlangshen
