// `erlangshen pretrain` with checkpoints, run as a user runs it (the binary, in a child process):
//   - exact resume with dropout on: 20 steps == stop_at=10 + resume (losses of steps 11-20 and final weights
//     bit-identical), with fp32 and with bf16 activation storage;
//   - crash safety: kill -9 while a checkpoint is half-written (test hook): the previous checkpoint is `latest`,
//     resume finishes with the uninterrupted run's losses, the partial folder is cleaned up;
//   - a flipped byte in a model file is refused naming the file;
//   - SIGUSR1 / SIGTERM: the step finishes, a checkpoint is written, exit code 85, resume continues exactly;
//   - refusals: another model shape, another vocabulary.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "checkpoint/checkpoint_dir.h"
#include "checkpoint/pretrain_checkpoint.h"
#include "checkpoint/safetensors.h"
#include "ckpt_test_util.h"

namespace erlangshen::ckpt {
namespace {

using namespace ckpt_testing;
namespace fs = std::filesystem;

// Tensor bytes of two model files are equal (headers may differ only in nothing; compare all bytes).
void expect_same_file(const fs::path& a, const fs::path& b) {
  ASSERT_TRUE(fs::exists(a)) << a;
  ASSERT_TRUE(fs::exists(b)) << b;
  EXPECT_TRUE(read_file(a.string()) == read_file(b.string())) << a << " differs from " << b;
}

// The uninterrupted reference run (20 steps), computed once.
class PretrainResume : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ref_ = new ScratchDir("ref20");
    const std::string metrics = ref_->file("metrics.jsonl");
    const int rc = run_erlangshen(concat({"pretrain"}, concat(small_model_args(),
                                  {"checkpoint.dir=" + ref_->file("ckpt"), "log.metrics=" + metrics})),
                                  ref_->file("log.txt"));
    ASSERT_EQ(rc, 0) << read_file(ref_->file("log.txt"));
    ref_losses_ = read_losses(metrics);
    ASSERT_EQ(ref_losses_.size(), 20u);
  }
  static void TearDownTestSuite() {
    delete ref_;
    ref_ = nullptr;
  }
  static fs::path ref_final(const std::string& file) { return fs::path(ref_->file("ckpt")) / "step_00000020" / file; }

  static void expect_losses_match(const std::map<int64_t, double>& got, int64_t first, int64_t last) {
    for (int64_t s = first; s <= last; ++s) {
      ASSERT_TRUE(got.count(s)) << "no loss for step " << s;
      EXPECT_EQ(got.at(s), ref_losses_.at(s)) << "step " << s;  // bit-identical
    }
  }

  static ScratchDir* ref_;
  static std::map<int64_t, double> ref_losses_;
};
ScratchDir* PretrainResume::ref_ = nullptr;
std::map<int64_t, double> PretrainResume::ref_losses_;

TEST_F(PretrainResume, StopAt10ThenResumeIsBitIdentical) {
  ScratchDir dir("resume10");
  const std::string ck = dir.file("ckpt"), metrics = dir.file("metrics.jsonl");
  const auto args = concat({"pretrain"}, concat(small_model_args(), {"checkpoint.dir=" + ck, "log.metrics=" + metrics}));
  ASSERT_EQ(run_erlangshen(concat(args, {"train.stop_at=10"}), dir.file("a.log")), 0) << read_file(dir.file("a.log"));
  EXPECT_EQ(read_file(ck + "/latest"), "step_00000010\n");
  ASSERT_EQ(run_erlangshen(args, dir.file("b.log")), 0) << read_file(dir.file("b.log"));
  EXPECT_NE(read_file(dir.file("b.log")).find("resume: step 10"), std::string::npos) << read_file(dir.file("b.log"));
  expect_losses_match(read_losses(metrics), 1, 20);
  expect_same_file(fs::path(ck) / "step_00000020" / "model-tp00.safetensors", ref_final("model-tp00.safetensors"));
  expect_same_file(fs::path(ck) / "step_00000020" / "optim-tp00-dp00.safetensors", ref_final("optim-tp00-dp00.safetensors"));
}

// The same with bf16 activation storage and a bf16 residual stream (train.activations=bf16 train.residual=bf16,
// emulated on the CPU): the bf16 compute copy of the weights is rebuilt from the loaded fp32 parameters, so the
// resumed run continues bit for bit.
TEST_F(PretrainResume, StopAt10ThenResumeIsBitIdenticalWithBf16Activations) {
  ScratchDir dir("resume10bf16");
  const auto run_args = [&](const std::string& ck, const std::string& metrics) {
    return concat({"pretrain"}, concat(small_model_args(), {"train.activations=bf16", "train.residual=bf16",
                                                            "checkpoint.dir=" + ck, "log.metrics=" + metrics}));
  };
  const auto ref = run_args(dir.file("ref"), dir.file("ref.jsonl"));
  ASSERT_EQ(run_erlangshen(ref, dir.file("ref.log")), 0) << read_file(dir.file("ref.log"));
  const auto args = run_args(dir.file("ckpt"), dir.file("metrics.jsonl"));
  ASSERT_EQ(run_erlangshen(concat(args, {"train.stop_at=10"}), dir.file("a.log")), 0) << read_file(dir.file("a.log"));
  ASSERT_EQ(run_erlangshen(args, dir.file("b.log")), 0) << read_file(dir.file("b.log"));
  EXPECT_NE(read_file(dir.file("b.log")).find("resume: step 10"), std::string::npos) << read_file(dir.file("b.log"));
  EXPECT_NE(read_file(dir.file("b.log")).find("bf16 activations, bf16 residual"), std::string::npos)
      << read_file(dir.file("b.log"));
  const auto want = read_losses(dir.file("ref.jsonl")), got = read_losses(dir.file("metrics.jsonl"));
  ASSERT_EQ(want.size(), 20u);
  for (int64_t s = 1; s <= 20; ++s) {
    ASSERT_TRUE(got.count(s)) << "no loss for step " << s;
    EXPECT_EQ(got.at(s), want.at(s)) << "step " << s;
  }
  EXPECT_NE(want.at(20), ref_losses_.at(20)) << "bf16 storage had no effect";
  expect_same_file(fs::path(dir.file("ckpt")) / "step_00000020" / "model-tp00.safetensors",
                   fs::path(dir.file("ref")) / "step_00000020" / "model-tp00.safetensors");
}

TEST_F(PretrainResume, ExplicitResumeFromOlderStepFolder) {
  ScratchDir dir("resume_explicit");
  const std::string ck = dir.file("ckpt"), metrics = dir.file("metrics.jsonl");
  const auto args = concat({"pretrain"}, concat(small_model_args(), {"checkpoint.dir=" + ck, "checkpoint.every=5",
                                                                     "checkpoint.keep=10", "log.metrics=" + metrics}));
  ASSERT_EQ(run_erlangshen(concat(args, {"train.stop_at=15"}), dir.file("a.log")), 0) << read_file(dir.file("a.log"));
  ASSERT_EQ(run_erlangshen(concat(args, {"--resume", ck + "/step_00000005"}), dir.file("b.log")), 0)
      << read_file(dir.file("b.log"));
  EXPECT_NE(read_file(dir.file("b.log")).find("resume: step 5"), std::string::npos);
  expect_losses_match(read_losses(metrics), 1, 20);  // steps 6..15 re-trained with the same values
  expect_same_file(fs::path(ck) / "step_00000020" / "model-tp00.safetensors", ref_final("model-tp00.safetensors"));
}

TEST_F(PretrainResume, KillDuringCheckpointWriteKeepsPreviousCheckpoint) {
  ScratchDir dir("crash");
  const std::string ck = dir.file("ckpt"), metrics = dir.file("metrics.jsonl");
  const auto args = concat({binary(), "pretrain"},
                           concat(small_model_args(), {"checkpoint.dir=" + ck, "checkpoint.every=5", "log.metrics=" + metrics}));
  const pid_t pid = spawn(args, dir.file("a.log"), {std::string(kPauseEnv) + "=10"});
  ASSERT_GT(pid, 0);
  ASSERT_TRUE(wait_for_file(ck + "/.test-paused", 60)) << read_file(dir.file("a.log"));
  ::kill(pid, SIGKILL);
  EXPECT_EQ(wait_exit(pid), 128 + SIGKILL);
  // The half-written step 10 never became a checkpoint; step 5 is still the latest.
  EXPECT_TRUE(fs::exists(fs::path(ck) / temp_folder_name(10)));
  EXPECT_FALSE(fs::exists(fs::path(ck) / "step_00000010"));
  EXPECT_EQ(read_file(ck + "/latest"), "step_00000005\n");
  fs::remove(ck + "/.test-paused");

  std::vector<std::string> resume(args.begin() + 1, args.end());
  ASSERT_EQ(run_erlangshen(resume, dir.file("b.log")), 0) << read_file(dir.file("b.log"));
  EXPECT_NE(read_file(dir.file("b.log")).find("resume: step 5"), std::string::npos) << read_file(dir.file("b.log"));
  expect_losses_match(read_losses(metrics), 6, 20);
  expect_same_file(fs::path(ck) / "step_00000020" / "model-tp00.safetensors", ref_final("model-tp00.safetensors"));
  EXPECT_FALSE(fs::exists(fs::path(ck) / temp_folder_name(10)));  // cleaned up by the next publish
}

TEST_F(PretrainResume, FlippedByteIsRefusedNamingTheFile) {
  ScratchDir dir("flip");
  const std::string ck = dir.file("ckpt");
  const auto args = concat({"pretrain"}, concat(small_model_args(), {"checkpoint.dir=" + ck}));
  ASSERT_EQ(run_erlangshen(concat(args, {"train.stop_at=3"}), dir.file("a.log")), 0) << read_file(dir.file("a.log"));
  const fs::path file = fs::path(ck) / "step_00000003" / "model-tp00.safetensors";
  {
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(-4096, std::ios::end);
    char c = 0;
    f.read(&c, 1);
    f.seekp(-4096, std::ios::end);
    f.put(static_cast<char>(c ^ 0x01));
  }
  EXPECT_EQ(run_erlangshen(args, dir.file("b.log")), 1);
  const std::string log = read_file(dir.file("b.log"));
  EXPECT_NE(log.find("model-tp00.safetensors"), std::string::npos) << log;
  EXPECT_NE(log.find("checksum"), std::string::npos) << log;
}

TEST_F(PretrainResume, StopSignalWritesCheckpointAndExits85) {
  for (int sig : {SIGUSR1, SIGTERM}) {
    ScratchDir dir("signal" + std::to_string(sig));
    const std::string ck = dir.file("ckpt"), metrics = dir.file("metrics.jsonl");
    // Slow the steps down (more threads would not help on one core): the signal must land mid-run.
    const auto args = concat({binary(), "pretrain"}, concat(small_model_args(), {"checkpoint.dir=" + ck, "log.metrics=" + metrics}));
    const pid_t pid = spawn(args, dir.file("a.log"));
    ASSERT_GT(pid, 0);
    ASSERT_TRUE(wait_for_file(metrics, 60)) << read_file(dir.file("a.log"));
    ::kill(pid, sig);
    const int rc = wait_exit(pid);
    const std::string log = read_file(dir.file("a.log"));
    const auto first = read_losses(metrics);
    if (rc == 0 && first.size() == 20u) {
      GTEST_SKIP() << "the run finished before the signal arrived";
    }
    ASSERT_EQ(rc, 85) << log;
    const int64_t stopped = first.rbegin()->first;
    EXPECT_EQ(read_file(ck + "/latest"), step_folder_name(stopped) + "\n") << log;
    std::vector<std::string> resume(args.begin() + 1, args.end());
    ASSERT_EQ(run_erlangshen(resume, dir.file("b.log")), 0) << read_file(dir.file("b.log"));
    expect_losses_match(read_losses(metrics), 1, 20);
    expect_same_file(fs::path(ck) / "step_00000020" / "model-tp00.safetensors", ref_final("model-tp00.safetensors"));
  }
}

TEST_F(PretrainResume, RefusesOtherModelShapeAndOtherVocabulary) {
  ScratchDir dir("refuse");
  const std::string ck = dir.file("ckpt");
  const std::string vocab_a = dir.file("vocab_a.txt"), vocab_b = dir.file("vocab_b.txt");
  std::ofstream(vocab_a) << "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\na\n";
  std::ofstream(vocab_b) << "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nb\n";
  const auto args = concat({"pretrain"}, concat(small_model_args(), {"checkpoint.dir=" + ck}));
  ASSERT_EQ(run_erlangshen(concat(args, {"train.stop_at=2", "data.vocab=" + vocab_a}), dir.file("a.log")), 0)
      << read_file(dir.file("a.log"));
  EXPECT_TRUE(fs::exists(fs::path(ck) / "step_00000002" / "vocab.txt"));

  EXPECT_EQ(run_erlangshen(concat(args, {"model.hidden=128", "data.vocab=" + vocab_a}), dir.file("b.log")), 1);
  std::string log = read_file(dir.file("b.log"));
  EXPECT_NE(log.find("model.hidden: checkpoint 64, config 128"), std::string::npos) << log;

  EXPECT_EQ(run_erlangshen(concat(args, {"data.vocab=" + vocab_b}), dir.file("c.log")), 1);
  log = read_file(dir.file("c.log"));
  EXPECT_NE(log.find("another vocabulary"), std::string::npos) << log;
  EXPECT_NE(log.find("vocab_b.txt"), std::string::npos) << log;
}

}  // namespace
}  // namespace erlangshen::ckpt
