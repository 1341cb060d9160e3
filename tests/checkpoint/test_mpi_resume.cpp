// Multi-rank checkpoints under mpiexec (4 ranks, oversubscribed on small machines):
//   - TP=2 x DP=2 with ZeRO-1: 20 steps == stop_at=10 + resume, bit for bit (losses and every saved file);
//   - re-layout: the TP2 x DP2 ZeRO-1 checkpoint of step 10 resumed as TP1 x DP4 (ZeRO-1) and TP4 x DP1 continues
//     within 1e-5 relative of the uninterrupted run (same global batch: micro_batch scales with 1/dp);
//   - SIGUSR1 to mpirun reaches every rank: one checkpoint, exit code 85, resume finishes exactly.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "checkpoint/checkpoint_dir.h"
#include "ckpt_test_util.h"

namespace erlangshen::ckpt {
namespace {

using namespace ckpt_testing;
namespace fs = std::filesystem;

const std::vector<std::string> kMpiEnv = {"OMPI_ALLOW_RUN_AS_ROOT=1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1",
                                          "OMPI_MCA_mpi_yield_when_idle=1", "OMP_NUM_THREADS=1",
                                          "OPENBLAS_NUM_THREADS=1"};

// Real vocab size (21128 -> 21248 rows for tp 1 and 2, 21504 for tp 4), heads divisible by 4.
std::vector<std::string> model_args(int tp, int dp, bool zero1) {
  return {"--config", source("configs/tiny.yaml"), "model.hidden=64", "model.layers=2", "model.heads=4",
          "model.ffn=128", "model.vocab_size=21128", "train.seq_len=32", "train.steps=20", "train.warmup_steps=5",
          "train.dropout=0.1", "train.attention_dropout=0.1", "log.every=1", "train.threads=1",
          "train.micro_batch=" + std::to_string(4 / dp), "parallel.tp=" + std::to_string(tp),
          "parallel.dp=" + std::to_string(dp), std::string("parallel.zero1=") + (zero1 ? "true" : "false")};
}

std::vector<std::string> mpi(int np, const std::vector<std::string>& args) {
  return concat({ERLANGSHEN_MPIEXEC, "--oversubscribe", "-np", std::to_string(np), binary(), "pretrain"}, args);
}

int run(const std::vector<std::string>& argv, const std::string& log) {
  const pid_t pid = spawn(argv, log, kMpiEnv);
  return pid < 0 ? -1 : wait_exit(pid);
}

class MpiResume : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new ScratchDir("mpi_resume");
    full_ = dir_->file("full");
    ASSERT_EQ(run(mpi(4, concat(model_args(2, 2, true), {"checkpoint.dir=" + full_, "log.metrics=" + full_ + ".jsonl"})),
                  dir_->file("full.log")), 0)
        << read_file(dir_->file("full.log"));
    ref_ = read_losses(full_ + ".jsonl");
    ASSERT_EQ(ref_.size(), 20u);
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static ScratchDir* dir_;
  static std::string full_;
  static std::map<int64_t, double> ref_;
};
ScratchDir* MpiResume::dir_ = nullptr;
std::string MpiResume::full_;
std::map<int64_t, double> MpiResume::ref_;

TEST_F(MpiResume, Tp2Dp2Zero1StopAndResumeIsBitIdentical) {
  const std::string ck = dir_->file("half");
  const auto args = concat(model_args(2, 2, true), {"checkpoint.dir=" + ck, "log.metrics=" + ck + ".jsonl"});
  ASSERT_EQ(run(mpi(4, concat(args, {"train.stop_at=10"})), dir_->file("half1.log")), 0) << read_file(dir_->file("half1.log"));
  ASSERT_EQ(run(mpi(4, args), dir_->file("half2.log")), 0) << read_file(dir_->file("half2.log"));
  EXPECT_NE(read_file(dir_->file("half2.log")).find("resume: step 10"), std::string::npos);
  const auto got = read_losses(ck + ".jsonl");
  for (int64_t s = 1; s <= 20; ++s) EXPECT_EQ(got.at(s), ref_.at(s)) << "step " << s;
  for (const char* f : {"model-tp00.safetensors", "model-tp01.safetensors", "optim-tp00-dp00.safetensors",
                        "optim-tp00-dp01.safetensors", "optim-tp01-dp00.safetensors", "optim-tp01-dp01.safetensors"}) {
    EXPECT_TRUE(read_file(ck + "/step_00000020/" + f) == read_file(full_ + "/step_00000020/" + f)) << f;
  }
}

TEST_F(MpiResume, RelayoutContinuesWithinTolerance) {
  const std::string base = dir_->file("base");
  ASSERT_EQ(run(mpi(4, concat(model_args(2, 2, true), {"checkpoint.dir=" + base, "train.stop_at=10"})),
                dir_->file("base.log")), 0)
      << read_file(dir_->file("base.log"));
  struct Layout { int tp, dp; bool zero1; };
  for (const Layout l : {Layout{1, 4, true}, Layout{4, 1, false}}) {
    const std::string tag = "tp" + std::to_string(l.tp) + "dp" + std::to_string(l.dp);
    const std::string metrics = dir_->file(tag + ".jsonl");
    const auto args = concat(model_args(l.tp, l.dp, l.zero1),
                             {"checkpoint.dir=" + dir_->file(tag), "--resume", base, "log.metrics=" + metrics});
    ASSERT_EQ(run(mpi(4, args), dir_->file(tag + ".log")), 0) << read_file(dir_->file(tag + ".log"));
    const std::string log = read_file(dir_->file(tag + ".log"));
    EXPECT_NE(log.find("re-sharded"), std::string::npos) << log;
    const auto got = read_losses(metrics);
    ASSERT_EQ(got.size(), 10u) << log;
    for (int64_t s = 11; s <= 20; ++s)
      EXPECT_LE(std::abs(got.at(s) - ref_.at(s)), 1e-5 * std::abs(ref_.at(s))) << tag << " step " << s;
  }
}

TEST_F(MpiResume, SignalToMpirunCheckpointsAndExits85) {
  const std::string ck = dir_->file("sig"), metrics = ck + ".jsonl";
  const auto argv = mpi(4, concat(model_args(2, 2, true), {"checkpoint.dir=" + ck, "log.metrics=" + metrics}));
  const pid_t pid = spawn(argv, dir_->file("sig1.log"), kMpiEnv);
  ASSERT_GT(pid, 0);
  ASSERT_TRUE(wait_for_file(metrics, 120)) << read_file(dir_->file("sig1.log"));
  ::kill(pid, SIGUSR1);  // Open MPI's mpirun forwards SIGUSR1 to every rank
  const int rc = wait_exit(pid);
  const auto first = read_losses(metrics);
  if (rc == 0 && first.size() == 20u) GTEST_SKIP() << "the run finished before the signal arrived";
  ASSERT_EQ(rc, 85) << read_file(dir_->file("sig1.log"));
  EXPECT_EQ(read_file(ck + "/latest"), step_folder_name(first.rbegin()->first) + "\n");
  ASSERT_EQ(run(argv, dir_->file("sig2.log")), 0) << read_file(dir_->file("sig2.log"));
  const auto got = read_losses(metrics);
  for (int64_t s = 1; s <= 20; ++s) EXPECT_EQ(got.at(s), ref_.at(s)) << "step " << s;
}

}  // namespace
}  // namespace erlangshen::ckpt
