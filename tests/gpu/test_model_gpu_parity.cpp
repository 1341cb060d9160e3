// Whole-model parity, CPU vs GPU (fp32 math): the same MegatronBert<float> (small config, dropout on) runs one
// pretraining micro-batch forward + backward on both backends; the MLM and SOP losses and every parameter
// gradient agree within 1e-4 relative. Dropout is keyed by global element index (Philox), so both backends drop
// the same elements: a different mask would move the gradients by O(1), far outside the tolerance. Then whole
// PretrainTrainer steps (staging, device AdamW, global norm, clipping) agree step by step, the host accessors
// round-trip, and the memory plan rejects a configuration that cannot fit before allocating.
// Needs the full build (model/, parallel/); skips without a GPU.
#include <cmath>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "model/megatron_bert.h"
#include "model/synthetic_batch.h"
#include "model/trainer.h"
#include "runtime/backend.h"
#include "runtime/cuda/device.h"
#include "tests/gpu/gpu_model_config.h"
#include "tests/gpu/gpu_test_util.h"

namespace erlangshen::testing {
namespace {

double rel(double a, double b) { return std::fabs(a - b) / std::max(std::fabs(b), 1e-30); }

class ModelGpuParity : public CudaTest {
 protected:
  void SetUp() override {
    CudaTest::SetUp();
    if (IsSkipped()) return;
    ctx_->set_math(cuda::MathMode::FP32);
  }
};

TEST_F(ModelGpuParity, ForwardBackwardLossesAndEveryGradient) {
  const Config c = small_gpu_model_config();
  SelfCommunicator tp_cpu("tp"), tp_gpu("tp");
  MegatronBert<float> cpu_model(c.model, ModelHeads::Pretraining, tp_cpu, c.train.dropout, c.train.attention_dropout);
  MegatronBert<float> gpu_model(c.model, ModelHeads::Pretraining, tp_gpu, c.train.dropout, c.train.attention_dropout,
                                gpu());
  cpu_model.initialize(c.train.seed);
  gpu_model.initialize(c.train.seed);
  const std::vector<float> p_cpu(cpu_model.params(), cpu_model.params() + cpu_model.num_params());
  ASSERT_TRUE(bit_equal(gpu_model.params_to_host(), p_cpu)) << "initialisation differs";

  const PretrainBatch batch = make_synthetic_batch(c.train.micro_batch, c.train.seq_len, c.model.vocab_size, 0.15,
                                                   c.train.seed, /*step=*/1, /*sample_base=*/4);
  const double M = static_cast<double>(batch.mlm_positions.size()), B = batch.batch;
  ASSERT_GT(M, 0);
  const RngContext rng{c.train.seed, 1, 4, /*train=*/true};
  for (int rep = 0; rep < 2; ++rep) {  // twice: gradients accumulate (+=) on both backends
    const PretrainLosses lc = cpu_model.pretrain_forward_backward(batch, rng, M, B, true);
    const PretrainLosses lg = gpu_model.pretrain_forward_backward(batch, rng, M, B, true);
    EXPECT_LT(rel(lg.mlm_sum, lc.mlm_sum), 1e-4) << "MLM loss: gpu " << lg.mlm_sum << " cpu " << lc.mlm_sum;
    EXPECT_LT(rel(lg.sop_sum, lc.sop_sum), 1e-4) << "SOP loss: gpu " << lg.sop_sum << " cpu " << lc.sop_sum;
    EXPECT_EQ(lg.mlm_count, lc.mlm_count);
    EXPECT_EQ(lg.sop_count, lc.sop_count);
  }
  const std::vector<float> g_gpu = gpu_model.grads_to_host();
  const float* g_cpu = cpu_model.grads();
  // As tests/model/test_reference_parity.cpp: tensors whose exact gradient is 0 (the key biases) hold rounding
  // noise of either backend (~1e-11 here), so every tensor's scale has a floor of 1e-3 x the model's largest gradient.
  double largest = 0.0;
  for (size_t i = 0; i < cpu_model.num_params(); ++i) largest = std::max(largest, std::fabs(double(g_cpu[i])));
  ASSERT_GT(largest, 0.0);
  for (const auto& e : cpu_model.table().entries()) {
    const std::vector<float> a(g_gpu.begin() + e.offset, g_gpu.begin() + e.offset + e.numel);
    const std::vector<float> b(g_cpu + e.offset, g_cpu + e.offset + e.numel);
    EXPECT_TRUE(close(a, b, 1e-4, 1e-3 * largest)) << "gradient of " << e.spec.name;
  }
}

TEST_F(ModelGpuParity, TrainerStepsMatchTheCpu) {
  const Config c = small_gpu_model_config();
  Logger quiet(1, 2);  // not rank 0: no progress lines
  auto run = [&](Exec exec) {
    SelfCommunicator tp("tp"), dp("dp");
    SyntheticDataSource data(c.train.micro_batch, c.train.grad_accum, c.train.seq_len, c.model.vocab_size,
                             c.data.mask_prob, c.train.seed, 0);
    PretrainTrainer trainer(c, TrainerGroups{&tp, &dp}, data, quiet, exec);
    std::vector<StepReport> reports;
    for (int s = 0; s < 3; ++s) reports.push_back(trainer.train_step());
    return reports;
  };
  const std::vector<StepReport> cpu_r = run(cpu()), gpu_r = run(gpu());
  for (size_t s = 0; s < cpu_r.size(); ++s) {
    SCOPED_TRACE("step " + std::to_string(s + 1));
    EXPECT_LT(rel(gpu_r[s].loss, cpu_r[s].loss), 1e-4) << gpu_r[s].loss << " vs " << cpu_r[s].loss;
    EXPECT_LT(rel(gpu_r[s].mlm_loss, cpu_r[s].mlm_loss), 1e-4);
    EXPECT_LT(rel(gpu_r[s].sop_loss, cpu_r[s].sop_loss), 1e-4);
    EXPECT_LT(rel(gpu_r[s].grad_norm, cpu_r[s].grad_norm), 1e-4) << gpu_r[s].grad_norm << " vs " << cpu_r[s].grad_norm;
    EXPECT_EQ(gpu_r[s].tokens, cpu_r[s].tokens);
  }
}

// train.overlap_optimizer: step s's AdamW runs on a second stream beside step s + 1's forward, which waits for each
// range of the parameters before it reads it, and the gradient norm is summed on that stream segment by segment as
// the last backward makes each final. Against the update in line, in a deterministic Context (the same GEMM
// algorithms in both runs), two micro-batches a step: the same losses and gradient norms at every step, and the same
// weights and AdamW moments bit for bit after three steps, with fp32 storage (the forward reads the fp32 weights) and
// bf16 storage (it reads the bf16 compute copy AdamW rewrites). Between the steps nothing but the forwards' waits
// orders the streams; under the CUDA emulation each stream's work runs as late as those waits allow, so a forward
// that read a range before waiting for it would read the weights of the step before.
TEST_F(ModelGpuParity, OverlappedOptimizerStepGivesTheSameBits) {
  cuda::ContextOptions o;
  o.math = cuda::MathMode::BF16;
  o.deterministic = true;
  cuda::Context det(o);
  const Exec exec{Device::CUDA, det.stream(), &det};
  Logger quiet(1, 2);
  struct Run {
    bool overlapped = false;
    std::vector<StepReport> reports;
    std::vector<float> params, m, v;
  };
  for (const char* storage : {"fp32", "bf16"}) {
    SCOPED_TRACE(std::string("storage ") + storage);
    Config c = small_gpu_model_config();
    c.train.activations = storage;
    c.train.residual = storage;
    c.train.steps = 10;  // the schedule's learning rate is not yet 0 at step 3 (it decays to 0 at train.steps)
    auto run = [&](bool overlap) {
      c.train.overlap_optimizer = overlap;
      SelfCommunicator tp("tp"), dp("dp");
      SyntheticDataSource data(c.train.micro_batch, c.train.grad_accum, c.train.seq_len, c.model.vocab_size,
                               c.data.mask_prob, c.train.seed, 0);
      PretrainTrainer trainer(c, TrainerGroups{&tp, &dp}, data, quiet, exec);
      Run r;
      r.overlapped = trainer.overlaps_optimizer();
      for (int s = 0; s < 3; ++s) r.reports.push_back(trainer.train_step());
      r.params = trainer.model().params_to_host();  // the accessor waits for the last update
      r.m.resize(r.params.size());
      r.v.resize(r.params.size());
      trainer.optimizer().download_state(r.m.data(), r.v.data());
      return r;
    };
    const Run inline_run = run(false), overlapped = run(true);
    EXPECT_FALSE(inline_run.overlapped);
    ASSERT_TRUE(overlapped.overlapped);
    for (size_t s = 0; s < inline_run.reports.size(); ++s) {
      SCOPED_TRACE("step " + std::to_string(s + 1));
      EXPECT_EQ(overlapped.reports[s].loss, inline_run.reports[s].loss);
      EXPECT_EQ(overlapped.reports[s].grad_norm, inline_run.reports[s].grad_norm);
    }
    EXPECT_TRUE(bit_equal(overlapped.params, inline_run.params)) << "weights";
    EXPECT_TRUE(bit_equal(overlapped.m, inline_run.m)) << "AdamW exp_avg";
    EXPECT_TRUE(bit_equal(overlapped.v, inline_run.v)) << "AdamW exp_avg_sq";
  }
}

TEST_F(ModelGpuParity, HostAccessorsRoundTrip) {
  const Config c = small_gpu_model_config();
  SelfCommunicator tp("tp");
  MegatronBert<float> model(c.model, ModelHeads::Pretraining, tp, 0.0, 0.0, gpu());
  std::vector<float> host = randn(model.num_params(), 7);
  model.upload_params(host.data());
  std::vector<float> back(model.num_params());
  model.download_params(back.data());
  EXPECT_TRUE(bit_equal(back, host));

  AdamW<float> opt(model.table(), c.train, gpu());
  const std::vector<float> m = randn(model.num_params(), 8), v = randn(model.num_params(), 9, 1.0f, 2.0f);
  opt.upload_state(m.data(), v.data());
  std::vector<float> m2(m.size()), v2(v.size());
  opt.download_state(m2.data(), v2.data());
  EXPECT_TRUE(bit_equal(m2, m));
  EXPECT_TRUE(bit_equal(v2, v));
}

// The plan that check_fits and `bench --largest-micro-batch` trust must cover what the trainer then allocates:
// parameters, master weights, gradients, AdamW state and the activation arenas (the MLM head's sized by its first
// step) -- every device_malloc of a trainer, which runs no allocation inside a step -- under every storage and
// recompute setting; and its activations category alone must cover the model's two arenas. An underestimate sends
// the largest micro-batch out of memory on the device. The plan may overestimate (it sizes the MLM head for
// mask_prob x N + B rows and keeps a few conservative terms) but not by more than a quarter.
TEST_F(ModelGpuParity, MemoryPlanCoversWhatTheTrainerAllocates) {
  ctx_->set_math(cuda::MathMode::BF16);  // bf16 storage needs it (as train.device=cuda has it)
  Logger quiet(1, 2);
  struct Setting {
    const char *activations, *residual, *recompute;
  };
  // every storage mix without recompute, and both recompute modes with the configs' bf16 storage
  const Setting settings[] = {{"fp32", "fp32", "none"}, {"fp32", "bf16", "none"},      {"bf16", "fp32", "none"},
                              {"bf16", "bf16", "none"}, {"bf16", "bf16", "selective"}, {"bf16", "bf16", "full"}};
  for (const auto& [activations, residual, recompute] : settings) {
    SCOPED_TRACE(std::string("activations ") + activations + ", residual " + residual + ", recompute " + recompute);
    Config c = small_gpu_model_config();
    c.train.activations = activations;
    c.train.residual = residual;
    c.train.recompute = recompute;
    c.train.grad_accum = 1;
    c.train.micro_batch = 8;
    c.train.seq_len = 64;  // N = 512 tokens: the activations outweigh the parameters
    int64_t planned = 0, planned_activations = 0;
    for (const auto& item : device_memory_plan(c).items) {  // the Context's staging and workspace: not the trainer's
      if (item.name.find("staging") == std::string::npos && item.name.find("workspace") == std::string::npos)
        planned += item.bytes;
      if (item.name.rfind("activations", 0) == 0) planned_activations = item.bytes;
    }
    const int64_t before = cuda::allocation_stats().current;
    SelfCommunicator tp("tp"), dp("dp");
    SyntheticDataSource data(c.train.micro_batch, c.train.grad_accum, c.train.seq_len, c.model.vocab_size,
                             c.data.mask_prob, c.train.seed, 0);
    PretrainTrainer trainer(c, TrainerGroups{&tp, &dp}, data, quiet, gpu());
    trainer.train_step();
    const int64_t held = cuda::allocation_stats().current - before;
    const int64_t arenas = static_cast<int64_t>(trainer.model().activation_bytes());
    EXPECT_LE(held, planned) << "the plan underestimates: " << held << " bytes held, " << planned << " planned";
    EXPECT_LE(planned, held + held / 4) << "the plan overestimates: " << held << " bytes held, " << planned
                                         << " planned";
    EXPECT_LE(arenas, planned_activations) << "activations: " << arenas << " bytes in the arenas";
    EXPECT_LE(planned_activations, arenas + arenas / 4) << "activations: " << arenas << " bytes in the arenas";
    std::printf("%s activations, %s residual, recompute %s: held %lld bytes, planned %lld (%.3f); arenas %lld, "
                "planned %lld (%.3f)\n",
                activations, residual, recompute, static_cast<long long>(held), static_cast<long long>(planned),
                double(planned) / double(held), static_cast<long long>(arenas),
                static_cast<long long>(planned_activations), double(planned_activations) / double(arenas));
  }
}

// Constructing a trainer with `c` must fail in the memory check (before allocating), naming `expected`.
void expect_memory_plan_refuses(const Config& c, const Exec& exec, const std::string& expected) {
  SelfCommunicator tp("tp"), dp("dp");
  SyntheticDataSource data(1, 1, 8, c.model.vocab_size, 0.15, 1, 0);
  Logger quiet(1, 2);
  try {
    PretrainTrainer trainer(c, TrainerGroups{&tp, &dp}, data, quiet, exec);
    ADD_FAILURE() << "expected the memory plan to reject micro_batch " << c.train.micro_batch;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
  }
}

TEST_F(ModelGpuParity, MemoryPlanRejectsWhatCannotFitBeforeAllocating) {
  Config c = small_gpu_model_config();
  c.model.max_positions = 512;
  c.train.seq_len = 512;
  c.train.micro_batch = 1 << 16;  // ~ terabytes of activations
  expect_memory_plan_refuses(c, gpu(), "train.micro_batch=");
}

// bench --largest-micro-batch: the micro-batch it picks passes the trainer's own memory check, and one more is
// refused by that check, naming the one that fits (the plan and the check are the same arithmetic on free memory).
TEST_F(ModelGpuParity, LargestMicroBatchIsTheOneTheTrainerAccepts) {
  Config c = small_gpu_model_config();
  c.model.max_positions = 512;
  c.train.seq_len = 512;
  c.model.hidden = 1024;  // big enough per sample that the answer is well below the search limit
  c.model.heads = 8;
  c.model.ffn = 4096;
  c.model.layers = 24;
  const int fit = largest_device_micro_batch(c);
  ASSERT_GE(fit, 1);
  ASSERT_LT(fit, 4096) << "the search limit, not the memory, decided";
  c.train.micro_batch = fit + 1;
  expect_memory_plan_refuses(c, gpu(), "train.micro_batch=" + std::to_string(fit));
}

// train.deterministic + train.recompute on the GPU: with GEMM algorithms fixed per shape and no atomic split-K,
// rerunning a step gives the same bits, and selective/full recompute (which rerun forward kernels inside
// backward) give the same losses and gradients bit for bit as keeping every activation.
TEST_F(ModelGpuParity, DeterministicModeRepeatsAndRecomputeKeepsTheBits) {
  Config c = small_gpu_model_config();
  cuda::ContextOptions o;
  o.math = cuda::MathMode::BF16;
  o.deterministic = true;
  cuda::Context det(o);
  const Exec exec{Device::CUDA, det.stream(), &det};
  const PretrainBatch batch = make_synthetic_batch(c.train.micro_batch, c.train.seq_len, c.model.vocab_size, 0.15,
                                                   c.train.seed, 1, 0);
  const double M = static_cast<double>(batch.mlm_positions.size()), B = batch.batch;
  // fp32 storage, and the 1.3B config's bf16 activations and residual stream (whose attention saves S and its row
  // statistics: selective recompute rebuilds them in the shared block)
  for (const ActivationStorage storage : {ActivationStorage::FP32, ActivationStorage::BF16}) {
    SCOPED_TRACE(activation_storage_name(storage));
    auto run = [&](Recompute mode) {
      SelfCommunicator tp("tp");
      MegatronBert<float> model(c.model, ModelHeads::Pretraining, tp, c.train.dropout, c.train.attention_dropout,
                                exec);
      model.initialize(c.train.seed);
      model.set_recompute(mode);
      model.set_activation_storage(storage);
      model.set_residual_storage(storage);
      model.zero_grads();
      const PretrainLosses l =
          model.pretrain_forward_backward(batch, RngContext{c.train.seed, 1, 0, true}, M, B, true);
      std::vector<float> out = model.grads_to_host();
      out.push_back(static_cast<float>(l.mlm_sum));
      out.push_back(static_cast<float>(l.sop_sum));
      return out;
    };
    const std::vector<float> a = run(Recompute::None), b = run(Recompute::None);
    EXPECT_TRUE(bit_equal(a, b)) << "two deterministic runs differ";
    EXPECT_TRUE(bit_equal(run(Recompute::Selective), a)) << "selective recompute";
    EXPECT_TRUE(bit_equal(run(Recompute::Full), a)) << "full recompute";
  }
}

TEST(BackendChoice, CudaBackendGivesADeviceExec) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA GPU visible";
  Backend b("cuda", 0, "test.yaml");
  EXPECT_TRUE(b.cuda());
  EXPECT_FALSE(b.gpu_name().empty());
}

// The config's kernel choices reach the backend Context (BackendOptions::of).
TEST(BackendChoice, ConfigKernelChoicesReachTheContext) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA GPU visible";
  for (bool on : {false, true}) {
    Config c;
    c.train.device = "cuda";
    c.train.deterministic = on;
    c.train.backward_epilogues = !on;
    c.train.fused_attention_forward = on;
    c.train.fused_attention_backward = !on;
    const Backend b(c);
    const cuda::ContextOptions& o = static_cast<const cuda::Context*>(b.exec().backend_context)->options();
    EXPECT_EQ(o.deterministic, on);
    EXPECT_EQ(o.backward_epilogues, !on);
    EXPECT_EQ(o.fused_attention_forward, on);
    EXPECT_EQ(o.fused_attention_backward, !on);
  }
}

// Backend::fused_attention: which fused attention kernels a config's run takes (what bench and pretrain report).
TEST(BackendChoice, FusedAttentionKernelsTheRunTakes) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA GPU visible";
  Config c;
  c.model.hidden = 256, c.model.heads = 4;  // head dim 64
  c.train.device = "cuda";
  c.train.activations = "bf16";
  c.train.seq_len = 128;
  c.train.fused_attention_forward = c.train.fused_attention_backward = true;
  auto taken = [](const Config& config) {
    const Backend::FusedAttention f = Backend(config).fused_attention(config);
    return std::make_pair(f.forward, f.backward);
  };
  EXPECT_EQ(taken(c), std::make_pair(true, true));
  Config longer = c;
  longer.train.seq_len = 512;  // the backward kernel takes T <= 128
  EXPECT_EQ(taken(longer), std::make_pair(true, false));
  Config off = c;
  off.train.fused_attention_forward = false;
  EXPECT_EQ(taken(off), std::make_pair(false, true));
  Config fp32 = c;
  fp32.train.activations = "fp32";  // no saved bf16 scores
  EXPECT_EQ(taken(fp32), std::make_pair(false, false));
  Config flash = c;
  flash.train.attention = "flash";
  EXPECT_EQ(taken(flash), std::make_pair(false, false));
  Config odd = c;
  odd.model.heads = 8;  // head dim 32: neither kernel
  EXPECT_EQ(taken(odd), std::make_pair(false, false));
}

}  // namespace
}  // namespace erlangshen::testing
