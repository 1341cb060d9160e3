// `erlangshen pretrain --config FILE [key=value ...]`: MegatronBERT pretraining (MLM + SOP).
// Under `mpirun -np N` (or `srun --mpi=pmix`) it runs the parallel.tp x parallel.dp layout over MPI; rank 0 logs.
#include <memory>

#include "checkpoint/pretrain_checkpoint.h"
#include "launch/commands.h"
#include "launch/device_groups.h"
#include "launch/run_options.h"
#include "launch/stop_signal.h"
#include "model/shard_data_source.h"
#include "model/trainer.h"
#include "parallel/mpi_communicator.h"
#include "parallel/process_group.h"
#include "runtime/backend.h"
#include "runtime/threading.h"

namespace erlangshen::cli {

void register_pretrain(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("pretrain", "Pretrain a MegatronBERT encoder with MLM (whole-word/KDM masking) + SOP");
  auto opts = add_run_options(cmd);
  auto resume = std::make_shared<std::string>();
  cmd->add_option("--resume", *resume,
                  "checkpoint to resume from: a checkpoint directory (its latest) or a step folder "
                  "(default: checkpoint.dir's latest when it has one)");
  cmd->callback([opts, resume, &exit_code] {
    Config config = opts->load();
    install_stop_signal_handlers();  // SIGTERM/SIGUSR1: finish the step, checkpoint, exit 85
    bool preempted = false;
    const int threads = set_compute_threads(config.train.threads);
    // MPI when a launcher started this process or the layout needs several ranks (then the world size check
    // names the keys); a plain single-process run needs no MPI.
    std::unique_ptr<MpiSession> mpi;
    if (MpiSession::launched_by_mpi() || config.parallel.tp * config.parallel.dp > 1)
      mpi = std::make_unique<MpiSession>();
    ProcessGroups groups = mpi ? make_mpi_groups(*mpi, config) : make_self_groups();
    Logger log(groups.world_rank, groups.world_size);
    try {
      // train.device=cuda: one GPU per rank, chosen by local rank; model buffers and gradients go through NCCL
      // groups over the same ranks, host scalars through the MPI groups (model/trainer.h TrainerGroups).
      Backend backend(config, groups.local_rank);
      DeviceGroups device_groups(config, groups, backend, mpi.get());
      const auto resume_from = ckpt::prepare_resume(config, *resume, log);  // may set train.seed: before data
      std::unique_ptr<PretrainDataSource> data;
      if (config.data.shards.empty()) {
        if (log.is_root())
          log.warn("data.shards is empty: training on synthetic random tokens (set data.shards to preprocessed shards)");
        data = std::make_unique<SyntheticDataSource>(config.train.micro_batch, config.train.grad_accum,
                                                     config.train.seq_len, config.model.vocab_size,
                                                     config.data.mask_prob, config.train.seed, groups.dp_rank);
      } else {
        data = std::make_unique<ShardDataSource>(config, groups.dp_rank, groups.dp);
      }
      PretrainTrainer trainer(
          config, device_groups.attach(TrainerGroups{groups.tp_group.get(), groups.dp_group.get(), groups.world.get()}),
          *data, log, backend.exec());
      const Backend::FusedAttention fused = backend.fused_attention(config);
      log.info("pretrain: " + backend.describe() +
               (device_groups.describe().empty() ? "" : ", " + device_groups.describe()));
      log.info("pretrain: " + std::to_string(trainer.model().table().total()) + " parameters per rank, layout " +
               groups.layout() + (config.parallel.zero1 && groups.dp > 1 ? " zero1" : "") + ", " +
               std::to_string(threads) + " threads per rank, global batch " + std::to_string(trainer.global_batch()) +
               " x " + std::to_string(config.train.seq_len) + ", " + config.train.activations +
               " activations, " + config.train.residual + " residual, " + config.train.attention + " attention" +
               (fused.forward ? " (forward fused)" : "") + (fused.backward ? " (backward fused)" : "") + ", " +
               (trainer.overlaps_optimizer() ? "optimizer overlapped with the next forward, " : "") +
               "data: " + data->describe());
      const TrainerGroups ckpt_groups{groups.tp_group.get(), groups.dp_group.get()};
      if (resume_from) ckpt::restore_pretrain_checkpoint(trainer, *resume_from, config, ckpt_groups, log);
      ckpt::install_save_hook(trainer, config, ckpt_groups, log);
      trainer.should_stop = [](const StepReport&) { return stop_requested(); };
      trainer.run();
      const int64_t end = config.train.stop_at > 0 ? std::min(config.train.stop_at, config.train.steps) : config.train.steps;
      if (trainer.step() < end) {  // the loop stopped early: a stop signal reached some rank
        if (config.checkpoint.dir.empty())
          throw Error("stopped by a signal after step " + std::to_string(trainer.step()) +
                      ", but checkpoint.dir is not set: nothing was saved");
        log.info("pretrain: stopped by a signal after step " + std::to_string(trainer.step()) +
                 " with a checkpoint; exit code " + std::to_string(kExitPreempted) + " (requeue to resume)");
        preempted = true;
      }
    } catch (const std::exception& e) {
      // One failing rank must take the job down rather than leave the others waiting in a collective.
      if (mpi && groups.world_size > 1) mpi->abort(std::string("error: ") + e.what());
      throw;
    }
    exit_code = preempted ? kExitPreempted : kExitOk;
  });
}

}  // namespace erlangshen::cli
