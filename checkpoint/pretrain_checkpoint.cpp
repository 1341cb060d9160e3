#include "checkpoint/pretrain_checkpoint.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "checkpoint/checkpoint_dir.h"
#include "checkpoint/file_io.h"
#include "checkpoint/manifest.h"
#include "checkpoint/reader.h"
#include "checkpoint/shard_writer.h"
#include "data_pipeline/sha256.h"
#include "model/lr_schedule.h"
#include "runtime/check.h"
#include "runtime/timer.h"

namespace erlangshen::ckpt {
namespace fs = std::filesystem;

namespace {

// Barrier over the whole TP x DP grid: TP groups first, then DP groups (each DP group meets every TP group).
void grid_barrier(TrainerGroups g) {
  g.tp->barrier();
  g.dp->barrier();
}

bool is_world_root(TrainerGroups g) { return g.tp->rank() == 0 && g.dp->rank() == 0; }

std::function<void()> pause_hook(const Config& config, int64_t step) {
  const char* env = std::getenv(kPauseEnv);
  if (!env || std::atoll(env) != step) return {};
  const std::string marker = (fs::path(config.checkpoint.dir) / ".test-paused").string();
  return [marker] {
    { OutputFile f(marker); }
    for (;;) ::pause();
  };
}

Manifest base_manifest(PretrainTrainer& trainer, const Config& config, TrainerGroups g, bool sharded) {
  Manifest m;
  m.step = trainer.step();
  m.consumed_samples = trainer.consumed_samples();
  m.model = config.model;
  m.heads = "pretraining";
  m.vocab_sha256 = run_vocab_sha256(config);
  m.tp = g.tp->size();
  m.dp = g.dp->size();
  m.zero1 = sharded;
  const TrainConfig& t = config.train;
  m.schedule = {{"step", trainer.step()},        {"lr", lr_at(t, std::max<int64_t>(1, trainer.step()))},
                {"base_lr", t.lr},               {"min_lr", t.min_lr},
                {"warmup_steps", t.warmup_steps}, {"decay", t.decay},
                {"steps", t.steps},              {"global_batch", trainer.global_batch()}};
  m.rng = {{"seed", t.seed}, {"step", trainer.step()}, {"generator", "philox4x32-10 keyed by (seed, purpose, step, ...)"}};
  m.optimizer = {{"type", "adamw"},         {"step_count", trainer.optimizer().step_count()},
                 {"beta1", t.beta1},        {"beta2", t.beta2},
                 {"eps", t.adam_eps},       {"weight_decay", t.weight_decay}};
  m.config_text = dump_config(config);
  return m;
}

}  // namespace

std::string run_vocab_sha256(const Config& config) {
  if (config.data.vocab.empty()) return "";
  return data::sha256_file(config.data.vocab);
}

std::string save_pretrain_checkpoint(PretrainTrainer& trainer, const Config& config, TrainerGroups g,
                                     const Logger& log) {
  const std::string& dir = config.checkpoint.dir;
  ERL_CHECK(!dir.empty(), "checkpoint.dir is not set");
  Stopwatch watch;
  const int64_t step = trainer.step();
  const std::string final_folder = (fs::path(dir) / step_folder_name(step)).string();
  const std::string temp = (fs::path(dir) / temp_folder_name(step)).string();
  grid_barrier(g);  // everyone sees the same state of the directory
  if (is_complete(final_folder)) {
    grid_barrier(g);
    if (is_world_root(g)) write_file_atomic((fs::path(dir) / "latest").string(), step_folder_name(step) + "\n");
    log.info("checkpoint: " + final_folder + " already exists (complete); not rewritten");
    grid_barrier(g);
    return final_folder;
  }
  if (is_world_root(g)) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) throw Error("checkpoint.dir " + dir + ": cannot create: " + ec.message());
    fs::remove_all(temp, ec);  // left by an interrupted write of this step
    fs::create_directory(temp, ec);
    if (ec) throw Error("checkpoint: cannot create " + temp + ": " + ec.message());
  }
  grid_barrier(g);

  const ParamTable& table = trainer.model().table();
  AdamW<float>& opt = trainer.optimizer();
  const bool sharded = opt.begin() != 0 || opt.end() != table.total();
  const int tp_rank = g.tp->rank(), dp_rank = g.dp->rank();
  uint64_t bytes = 0;
  if (dp_rank == 0) {
    // CUDA: the flat buffers live on the GPU; stage a host copy (on the CPU they are written in place).
    const MegatronBert<float>& model = trainer.model();
    std::vector<float> staged;
    const float* params = host_view(model.exec(), model.params(), model.num_params(), staged);
    bytes += write_model_shard(temp, table, params, pause_hook(config, step)).bytes;
  }
  if (sharded || dp_rank == 0) {
    std::vector<float> m_host, v_host;
    const float* m = host_view(opt.exp_avg().exec(), opt.exp_avg().data(), opt.exp_avg().size(), m_host);
    const float* v = host_view(opt.exp_avg_sq().exec(), opt.exp_avg_sq().data(), opt.exp_avg_sq().size(), v_host);
    bytes += write_optimizer_shard(temp, table, dp_rank, opt.begin(), opt.end(), m, v, opt.step_count()).bytes;
  }
  if (tp_rank == 0) write_data_cursor(temp, dp_rank, trainer.data().cursor());
  grid_barrier(g);

  std::string error;
  if (is_world_root(g)) {
    try {
      Manifest m = base_manifest(trainer, config, g, sharded);
      if (!config.data.vocab.empty()) {
        copy_file_synced(config.data.vocab, (fs::path(temp) / "vocab.txt").string());
        m.vocab_file = "vocab.txt";
      }
      assemble_manifest(temp, m, true);
      sync_directory(temp);
      publish(dir, temp, step);
      const auto removed = prune(dir, config.checkpoint.keep);
      const double s = watch.seconds();
      log.info("checkpoint: step " + std::to_string(step) + " -> " + final_folder + " (rank 0 wrote " +
               std::to_string(bytes >> 20) + " MiB, " + std::to_string(s).substr(0, 5) + " s" +
               (removed.empty() ? "" : ", pruned " + std::to_string(removed.size())) + ")");
    } catch (const std::exception& e) {
      error = e.what();
    }
  }
  // Nobody returns (and possibly exits) before the checkpoint is published.
  double failed = error.empty() ? 0.0 : 1.0;
  g.tp->all_reduce(&failed, 1, ReduceOp::Max);
  g.dp->all_reduce(&failed, 1, ReduceOp::Max);
  if (!error.empty()) throw Error("checkpoint step " + std::to_string(step) + ": " + error);
  if (failed > 0) throw Error("checkpoint step " + std::to_string(step) + ": rank 0 failed to publish it");
  return final_folder;
}

std::optional<std::string> prepare_resume(Config& config, const std::string& explicit_path, const Logger& log) {
  std::string folder;
  if (!explicit_path.empty()) {
    folder = resolve_checkpoint(explicit_path);
  } else if (!config.checkpoint.dir.empty()) {
    auto latest = find_latest(config.checkpoint.dir);
    if (!latest) return std::nullopt;
    folder = *latest;
  } else {
    return std::nullopt;
  }
  const Manifest m = Manifest::load(folder);
  const std::string diff = model_mismatch(m.model, config.model);
  if (!diff.empty())
    throw Error("checkpoint " + folder + " does not match the model of " + config.source + ":\n" + diff +
                "(resume with the config it was trained with, or start a new checkpoint.dir)");
  const std::string vocab = run_vocab_sha256(config);
  if (!vocab.empty() && !m.vocab_sha256.empty() && vocab != m.vocab_sha256)
    throw Error("checkpoint " + folder + " was trained with another vocabulary: its vocab sha256 is " + m.vocab_sha256 +
                ", data.vocab " + config.data.vocab + " hashes to " + vocab);
  if (m.rng.contains("seed")) {
    const uint64_t seed = m.rng.at("seed").get<uint64_t>();
    if (seed != config.train.seed) {
      if (log.is_root())
        log.warn("resume: train.seed " + std::to_string(config.train.seed) + " replaced by the checkpoint's seed " +
               std::to_string(seed) + " so that the run continues the same random streams");
      config.train.seed = seed;
    }
  }
  return folder;
}

ResumeInfo restore_pretrain_checkpoint(PretrainTrainer& trainer, const std::string& folder, const Config& config,
                                       TrainerGroups g, const Logger& log) {
  Stopwatch watch;
  CheckpointReader reader(folder);
  const Manifest& m = reader.manifest();
  ResumeInfo info;
  info.folder = reader.folder();
  info.step = m.step;
  const ParamTable& table = trainer.model().table();
  AdamW<float>& opt = trainer.optimizer();
  const bool sharded = opt.begin() != 0 || opt.end() != table.total();
  info.relayout = m.tp != g.tp->size() || m.dp != g.dp->size() || m.zero1 != sharded;

  const bool on_device = trainer.model().exec().on_device();
  std::vector<float> staged(on_device ? table.total() : 0);
  const LoadReport params = reader.load_params(table, on_device ? staged.data() : trainer.model().params());
  if (on_device) trainer.model().upload_params(staged.data());
  if (params.padding_rows_added > 0 && log.is_root())
    log.info("resume: " + std::to_string(params.padding_rows_added) +
             " vocab padding rows added for parallel.tp=" + std::to_string(g.tp->size()) + " (inert: no probability mass)");
  if (params.padding_rows_dropped > 0 && log.is_root())
    log.warn("resume: " + std::to_string(params.padding_rows_dropped) +
             " saved vocab padding rows dropped for parallel.tp=" + std::to_string(g.tp->size()) +
             "; they held trained logits, so the MLM loss can differ slightly from the saved layout's");
  if (m.has_optimizer()) {
    if (opt.exp_avg().on_device()) {
      const size_t n = opt.end() - opt.begin();
      std::vector<float> m(n), v(n);
      reader.load_optimizer(table, opt.begin(), opt.end(), m.data(), v.data());
      opt.exp_avg().copy_from_host(m.data(), 0, n);
      opt.exp_avg_sq().copy_from_host(v.data(), 0, n);
    } else {
      reader.load_optimizer(table, opt.begin(), opt.end(), opt.exp_avg().data(), opt.exp_avg_sq().data());
    }
    opt.set_step_count(m.optimizer.value("step_count", m.step));
    info.optimizer = true;
  } else if (log.is_root()) {
    log.warn("resume: " + info.folder + " has no optimizer state (imported weights?): AdamW starts fresh");
  }
  trainer.set_step(m.step);
  if (!m.data_cursors.empty()) {
    const int dp = g.dp->size(), rank = g.dp->rank();
    if (static_cast<int>(m.data_cursors.size()) == dp) {
      trainer.data().restore(m.data_cursors[static_cast<size_t>(rank)]);
    } else {
      if (log.is_root())
        log.info("resume: data cursors were saved for parallel.dp=" + std::to_string(m.data_cursors.size()) +
                 "; every DP rank restores DP rank 0's cursor (the loader's cursor is a global position)");
      trainer.data().restore(m.data_cursors.front());
    }
  }
  if (m.schedule.contains("global_batch") && m.schedule.at("global_batch").get<int64_t>() != trainer.global_batch() &&
      log.is_root())
    log.warn("resume: global batch was " + std::to_string(m.schedule.at("global_batch").get<int64_t>()) + ", now " +
             std::to_string(trainer.global_batch()) +
             " (micro_batch is per DP rank: scale it with parallel.dp to keep the run's batches)");
  info.seconds = watch.seconds();
  log.info("resume: step " + std::to_string(m.step) + " from " + info.folder + " (saved tp=" + std::to_string(m.tp) +
           " dp=" + std::to_string(m.dp) + (m.zero1 ? " zero1" : "") + (info.relayout ? ", re-sharded" : "") + ") in " +
           std::to_string(info.seconds).substr(0, 5) + " s");
  return info;
}

void install_save_hook(PretrainTrainer& trainer, const Config& config, TrainerGroups groups, const Logger& log) {
  if (config.checkpoint.dir.empty()) return;
  PretrainTrainer* t = &trainer;
  trainer.save_checkpoint = [t, config, groups, log](int64_t) { save_pretrain_checkpoint(*t, config, groups, log); };
}

}  // namespace erlangshen::ckpt
