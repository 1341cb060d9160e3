// The pretraining loop: for each optimizer step, the DP rank's micro-batches run forward + backward with
// gradients accumulated; gradients are summed over DP (loss denominators are global, so a sum is the
// global gradient) in buckets that start during the last micro-batch's backward (parallel/grad_reducer.h);
// the global gradient norm is clipped; AdamW updates (under ZeRO-1 only this DP rank's shard, then the
// parameters are all-gathered); rank 0 prints a progress line and writes a metrics record.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "model/adamw.h"
#include "model/data_source.h"
#include "model/megatron_bert.h"
#include "parallel/grad_reducer.h"
#include "runtime/config.h"
#include "runtime/logging.h"
#include "runtime/side_stream.h"
#if defined(ERLANGSHEN_HAVE_CUDA)
#include "runtime/cuda/memory.h"
#endif

namespace erlangshen {

// Process groups the trainer uses, passed explicitly (parallel/ builds them). Two kinds of collectives:
//   host groups (tp, dp, world): scalars the trainer reads on the host (loss sums, token counts, the squared
//     gradient norm, stop flags, per-rank communication times) -- MPI on host memory;
//   device groups (device_tp, device_dp): buffers in the Exec's memory (the model's TP activations and
//     vocab-parallel statistics, the DP gradient buckets, ZeRO-1's parameter all-gather) -- NCCL on the GPU.
// On the CPU the Exec's memory is host memory, so the device groups default to the host groups (null = same).
struct TrainerGroups {
  Communicator* tp;
  Communicator* dp;
  Communicator* world = nullptr;  // optional: stop agreement and per-rank communication times in the log
  Communicator* device_tp = nullptr;
  Communicator* device_dp = nullptr;
  Communicator& model_tp() const { return device_tp ? *device_tp : *tp; }
  Communicator& model_dp() const { return device_dp ? *device_dp : *dp; }
};

// On a CUDA build with a visible GPU: the largest micro-batch whose device memory plan (runtime/cuda/memory.h,
// the check every trainer runs before allocating) fits the free memory now, for this configuration on TP rank 0
// of `tp_size` with ZeRO-1 over `dp_size` when configured; 0 when none fits. Throws without a CUDA backend.
int largest_device_micro_batch(const Config& config, int tp_size = 1, int dp_size = 1);
#if defined(ERLANGSHEN_HAVE_CUDA)
// The device memory plan every trainer logs and checks before allocating (the arithmetic behind both functions
// above), for this configuration on TP rank `tp_rank` of `tp_size` with ZeRO-1 over `dp_size` when configured.
cuda::MemoryPlan device_memory_plan(const Config& config, int tp_rank = 0, int tp_size = 1, int dp_size = 1);
#endif

struct StepReport {
  int64_t step = 0;
  double loss = 0, mlm_loss = 0, sop_loss = 0, mlm_acc = 0, sop_acc = 0;
  double lr = 0, grad_norm = 0;
  double step_seconds = 0, tokens_per_s = 0;
  double comm_seconds = 0;         // exposed: this rank waited on TP + DP collectives
  double comm_hidden_seconds = 0;  // DP collectives in flight while backward computed
  int64_t tokens = 0;
  std::vector<double> rank_comm_seconds;  // exposed comm of every world rank (filled on logged steps)
  // hidden / (hidden + exposed): the share of communication that overlapped computation
  double overlap() const {
    const double total = comm_hidden_seconds + comm_seconds;
    return total > 0 ? comm_hidden_seconds / total : 0.0;
  }
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

  // The model and the optimizer state. Under train.overlap_optimizer (CUDA) the last step's update may still be
  // running on its own stream: these accessors order everything after them on the main stream behind it.
  MegatronBert<float>& model() {
    finish_update();
    return model_;
  }
  // DP gradient bucket size in elements (default: parallel.bucket_mb); finer than 1 MB for tests and tuning.
  // Call before the first step.
  void set_dp_bucket_elems(size_t elems);
  // Under ZeRO-1 the optimizer holds this DP rank's shard [optimizer().begin(), optimizer().end()) only.
  AdamW<float>& optimizer() {
    finish_update();
    return *optimizer_;
  }
  // Whether optimizer steps overlap the next forward (train.overlap_optimizer on a CUDA trainer without ZeRO-1).
  bool overlaps_optimizer() const { return update_stream_ != nullptr; }
  PretrainDataSource& data() { return data_; }
  int64_t step() const { return step_; }
  void set_step(int64_t s) { step_ = s; }
  int64_t consumed_samples() const { return step_ * global_batch_; }
  int64_t global_batch() const { return global_batch_; }

 private:
  void log_step(const StepReport& r);
  void make_reducer(size_t bucket_elems);
  bool agree_to_stop(bool stop);         // true on every rank when any rank wants to stop
  void gather_rank_comm(StepReport& r);  // fills r.rank_comm_seconds (collective over world)
  // The overlapped optimizer step (train.overlap_optimizer): AdamW runs on update_stream_ range by range, in the
  // order the forward reads the parameters (MegatronBert::forward_read_bounds), marking each range; the next
  // forward's MegatronBert::set_params_needed_hook calls await_update, which makes the main stream wait for the
  // ranges it is about to read. finish_update waits for all of it (on the main stream).
  void update_overlapped(double lr, double grad_scale, bf16* compute_copy);
  void await_update(size_t end);
  void finish_update();

  Config config_;
  TrainerGroups groups_;
  PretrainDataSource& data_;
  Logger log_;
  Exec exec_;
  MegatronBert<float> model_;
  std::unique_ptr<AdamW<float>> optimizer_;
  std::unique_ptr<GradReducer<float>> reducer_;  // DP > 1 only
  // Declared after the model and optimizer, so destroyed first: its destructor waits for the update it runs.
  std::unique_ptr<SideStream> update_stream_;  // train.overlap_optimizer on CUDA only
  std::vector<size_t> update_bounds_;          // the ranges' bounds: range k = [bounds[k], bounds[k + 1])
  int update_awaited_ = 0;  // ranges of the last update the main stream waits for (all of them: nothing pending)
  int update_ranges() const { return static_cast<int>(update_bounds_.size()) - 1; }
  // An update runs on update_stream_ that the main stream has not awaited in full.
  bool update_pending() const { return update_awaited_ < update_ranges(); }
  // With the overlapped update and no DP reducer: the gradient norm's sums, taken on update_stream_ as the last
  // backward makes each segment final (the same bits as grad_sq_sum_local after it).
  std::unique_ptr<GradSqSumBySegment<float>> norm_by_segment_;
  int64_t step_ = 0;
  int64_t global_batch_;
  double run_start_ = 0;
  int64_t run_start_step_ = 0;
};

// Human-readable duration "1h02m", "3m05s", "12s".
std::string format_duration(double seconds);

}  // namespace erlangshen
