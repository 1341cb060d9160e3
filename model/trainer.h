// The pretraining loop: for each optimizer step, the DP rank's micro-batches run forward + backward with
// gradients accumulated; gradients are summed over DP (loss denominators are global, so a sum is the
// global gradient); the global gradient norm is clipped; AdamW updates; rank 0 prints a progress line and
// writes a metrics record.
#pragma once
#include <functional>
#include <memory>
#include <string>

#include "model/adamw.h"
#include "model/data_source.h"
#include "model/megatron_bert.h"
#include "runtime/config.h"
#include "runtime/logging.h"

namespace erlangshen {

// Process groups the trainer uses, passed explicitly (parallel/ builds them).
struct TrainerGroups {
  Communicator* tp;
  Communicator* dp;
};

struct StepReport {
  int64_t step = 0;
  double loss = 0, mlm_loss = 0, sop_loss = 0, mlm_acc = 0, sop_acc = 0;
  double lr = 0, grad_norm = 0;
  double step_seconds = 0, tokens_per_s = 0, comm_seconds = 0;
  int64_t tokens = 0;
};

class PretrainTrainer {
 public:
  PretrainTrainer(const Config& config, TrainerGroups groups, PretrainDataSource& data, const Logger& log,
                  Exec exec = {});

  // Runs from the current step to train.steps (or train.stop_at). Returns the last report.
  StepReport run();
  // One optimizer step (exposed for tests and bench).
  StepReport train_step();

  // Called after each step; return true to stop (signals, stop_at). Default: none.
  std::function<bool(const StepReport&)> should_stop;
  // Called to write a checkpoint at `step` (every checkpoint.every steps and at the end). Default: none.
  std::function<void(int64_t step)> save_checkpoint;

  MegatronBert<float>& model() { return model_; }
  AdamW<float>& optimizer() { return *optimizer_; }
  PretrainDataSource& data() { return data_; }
  int64_t step() const { return step_; }
  void set_step(int64_t s) { step_ = s; }
  int64_t consumed_samples() const { return step_ * global_batch_; }
  int64_t global_batch() const { return global_batch_; }

 private:
  void log_step(const StepReport& r);

  Config config_;
  TrainerGroups groups_;
  PretrainDataSource& data_;
  Logger log_;
  Exec exec_;
  MegatronBert<float> model_;
  std::unique_ptr<AdamW<float>> optimizer_;
  int64_t step_ = 0;
  int64_t global_batch_;
  double run_start_ = 0;
  int64_t run_start_step_ = 0;
};

// Human-readable duration "1h02m", "3m05s", "12s".
std::string format_duration(double seconds);

}  // namespace erlangshen
