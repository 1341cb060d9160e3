// Checkpoints of a trainer on the GPU (checkpoint/pretrain_checkpoint.h stages the device buffers through the
// host): with train.deterministic, 2 steps + save + restore into a fresh GPU trainer + 2 steps give the losses
// and final weights of 4 uninterrupted steps bit for bit; and a checkpoint written from the GPU resumes on the
// CPU and continues with the losses of a GPU run within fp32 tolerance (GEMMs in fp32 on both sides). A wrong
// staging (no copy, a stale copy, moments not restored) changes step 3's loss by far more than that.
// Needs the full build or the standalone build with yaml-cpp/json/CLI11; skips without a GPU.
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "checkpoint/pretrain_checkpoint.h"
#include "model/trainer.h"
#include "tests/gpu/gpu_model_config.h"
#include "tests/gpu/gpu_test_util.h"

namespace erlangshen::testing {
namespace {

namespace fs = std::filesystem;

Config small_config(const std::string& dir) {
  Config c = small_gpu_model_config();
  c.train.warmup_steps = 1;
  c.train.steps = 4;
  c.train.seed = 777;
  c.checkpoint.dir = dir;
  return c;
}

struct TrainedRun {
  std::vector<double> losses;
  std::vector<float> params;
};

class GpuCheckpoint : public CudaTest {
 protected:
  void SetUp() override {
    CudaTest::SetUp();
    if (IsSkipped()) return;
    dir_ = fs::temp_directory_path() / ("erlangshen_gpu_ckpt_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    if (!dir_.empty()) fs::remove_all(dir_, ec);
  }

  // Trains `steps` steps on `exec` (from the checkpoint `resume` when set), saving at the end when `save`.
  TrainedRun train(const Config& c, Exec exec, int steps, const std::string& resume, bool save) {
    SelfCommunicator tp("tp"), dp("dp");
    SyntheticDataSource data(c.train.micro_batch, c.train.grad_accum, c.train.seq_len, c.model.vocab_size,
                             c.data.mask_prob, c.train.seed, 0);
    Logger quiet(1, 2);
    PretrainTrainer trainer(c, TrainerGroups{&tp, &dp}, data, quiet, exec);
    if (!resume.empty()) ckpt::restore_pretrain_checkpoint(trainer, resume, c, TrainerGroups{&tp, &dp}, quiet);
    TrainedRun r;
    for (int s = 0; s < steps; ++s) r.losses.push_back(trainer.train_step().loss);
    if (save) ckpt::save_pretrain_checkpoint(trainer, c, TrainerGroups{&tp, &dp}, quiet);
    r.params = trainer.model().params_to_host();
    return r;
  }

  fs::path dir_;
};

// In fp32 storage and in the 1.3B config's storage (bf16 activations and residual stream: the bf16 compute copy of
// the weights is rebuilt from the restored fp32 weights).
TEST_F(GpuCheckpoint, DeterministicResumeIsBitIdentical) {
  cuda::ContextOptions o;
  o.math = cuda::MathMode::BF16;
  o.deterministic = true;
  cuda::Context det(o);
  const Exec exec{Device::CUDA, det.stream(), &det};
  for (const char* storage : {"fp32", "bf16"}) {
    SCOPED_TRACE(std::string("activations and residual stream ") + storage);
    Config c = small_config(dir_.string());
    c.train.activations = c.train.residual = storage;
    fs::remove_all(dir_);
    const TrainedRun whole = train(c, exec, 4, "", false);
    const TrainedRun first = train(c, exec, 2, "", true);
    const std::string folder = (dir_ / "step_00000002").string();
    ASSERT_TRUE(fs::exists(folder)) << "no checkpoint folder " << folder;
    const TrainedRun rest = train(c, exec, 2, folder, false);
    ASSERT_EQ(rest.losses.size(), 2u);
    EXPECT_EQ(first.losses[0], whole.losses[0]);
    EXPECT_EQ(first.losses[1], whole.losses[1]);
    EXPECT_EQ(rest.losses[0], whole.losses[2]) << "step 3 after resume";
    EXPECT_EQ(rest.losses[1], whole.losses[3]) << "step 4 after resume";
    EXPECT_TRUE(bit_equal(rest.params, whole.params)) << "final weights after resume";
  }
}

TEST_F(GpuCheckpoint, GpuCheckpointResumesOnTheCpu) {
  const Config c = small_config(dir_.string());  // the fixture's context: fp32 GEMMs
  const TrainedRun whole = train(c, gpu(), 4, "", false);
  train(c, gpu(), 2, "", true);
  const TrainedRun cpu_rest = train(c, cpu(), 2, (dir_ / "step_00000002").string(), false);
  for (int s = 0; s < 2; ++s) {
    const double a = cpu_rest.losses[s], b = whole.losses[2 + s];
    EXPECT_LT(std::fabs(a - b) / std::fabs(b), 1e-4) << "step " << 3 + s << ": cpu " << a << " gpu " << b;
  }
  EXPECT_TRUE(close(cpu_rest.params, whole.params, 1e-4)) << "final weights";
}

}  // namespace
}  // namespace erlangshen::testing
