// Checkpointing of a PretrainTrainer: save (collective over the TP x DP grid; every rank writes its own files,
// rank 0 writes the manifest and publishes), resume (every rank reads what its layout needs, from any saved
// layout), and the hook-up that `erlangshen pretrain` uses.
#pragma once
#include <cstdint>
#include <optional>
#include <string>

#include "model/trainer.h"
#include "runtime/config.h"
#include "runtime/logging.h"

namespace erlangshen::ckpt {

// SHA-256 of data.vocab's bytes; empty when data.vocab is not set.
std::string run_vocab_sha256(const Config& config);

// Writes the trainer's state at its current step to config.checkpoint.dir and prunes to checkpoint.keep.
// Every rank calls it; it returns on every rank after the checkpoint is durable and `latest` names it.
// Returns the step folder.
std::string save_pretrain_checkpoint(PretrainTrainer& trainer, const Config& config, TrainerGroups groups,
                                     const Logger& log);

// The checkpoint pretrain resumes from: `explicit_path` (a checkpoint directory or a step folder) when set,
// else checkpoint.dir's newest complete checkpoint, else nothing. When there is one, checks that its model
// matches config.model and its vocab hash matches data.vocab (throws Error naming both otherwise), and sets
// config.train.seed to the saved seed so that dropout and masking continue the same streams.
std::optional<std::string> prepare_resume(Config& config, const std::string& explicit_path, const Logger& log);

struct ResumeInfo {
  std::string folder;
  int64_t step = 0;
  bool relayout = false;  // saved under another TP/DP/ZeRO layout
  bool optimizer = false; // optimizer moments were restored (an imported checkpoint has none)
  double seconds = 0;     // load + data fast-forward
};

// Restores weights, AdamW moments and step count, the trainer's step and this DP rank's data cursor.
ResumeInfo restore_pretrain_checkpoint(PretrainTrainer& trainer, const std::string& folder, const Config& config,
                                       TrainerGroups groups, const Logger& log);

// For `erlangshen pretrain`: installs trainer.save_checkpoint (when checkpoint.dir is set) so that the trainer
// saves every checkpoint.every steps, on stop and at the end.
void install_save_hook(PretrainTrainer& trainer, const Config& config, TrainerGroups groups, const Logger& log);

// Test hook (crash-safety tests): when the environment variable ERLANGSHEN_TEST_PAUSE_CHECKPOINT_STEP=N is set,
// the model file of step N's checkpoint stops half-written, `<checkpoint.dir>/.test-paused` is created and the
// process sleeps until it is killed.
constexpr const char* kPauseEnv = "ERLANGSHEN_TEST_PAUSE_CHECKPOINT_STEP";

}  // namespace erlangshen::ckpt
