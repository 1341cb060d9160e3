// `erlangshen pretrain --config FILE [key=value ...]`: MegatronBERT pretraining (MLM + SOP).
#include <memory>

#include "launch/commands.h"
#include "launch/run_options.h"
#include "model/trainer.h"
#include "runtime/threading.h"

namespace erlangshen::cli {

void register_pretrain(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("pretrain", "Pretrain a MegatronBERT encoder with MLM (whole-word/KDM masking) + SOP");
  auto opts = add_run_options(cmd);
  cmd->callback([opts, &exit_code] {
    Config config = opts->load();
    Logger log;
    const int threads = set_compute_threads(config.train.threads);
    SelfCommunicator tp("tp"), dp("dp");
    std::unique_ptr<PretrainDataSource> data;
    if (config.data.shards.empty()) {
      log.warn("data.shards is empty: training on synthetic random tokens (set data.shards to preprocessed shards)");
      data = std::make_unique<SyntheticDataSource>(config.train.micro_batch, config.train.grad_accum,
                                                   config.train.seq_len, config.model.vocab_size, config.data.mask_prob,
                                                   config.train.seed, dp.rank());
    } else {
      throw Error("data.shards: the HDF5 loader is not wired into pretrain yet");
    }
    PretrainTrainer trainer(config, TrainerGroups{&tp, &dp}, *data, log);
    log.info("pretrain: " + std::to_string(trainer.model().table().total()) + " parameters, " +
             std::to_string(threads) + " threads, global batch " + std::to_string(trainer.global_batch()) + " x " +
             std::to_string(config.train.seq_len) + ", data: " + data->describe());
    trainer.run();
    exit_code = kExitOk;
  });
}

}  // namespace erlangshen::cli
