// `erlangshen finetune --config FILE [key=value ...] [--output FILE]`: fine-tunes a classification model on
// sentence pairs (data.train), keeps the best by dev macro-F1 (data.dev) in <checkpoint.dir>/best, and scores it
// on data.test when that file is labeled. --output writes the run's summary as JSON (dev + test metrics).
#include <fstream>
#include <memory>

#include "launch/commands.h"
#include "launch/finetune_io.h"
#include "launch/run_options.h"
#include "model/finetune_trainer.h"
#include "runtime/backend.h"
#include "runtime/threading.h"

namespace erlangshen::cli {

namespace {

nlohmann::json eval_json(const FinetuneEval& e, const std::vector<std::string>& labels) {
  return {{"step", e.step}, {"epoch", e.epoch}, {"loss", e.loss}, {"metrics", e.metrics.to_json(labels)}};
}

}  // namespace

void register_finetune(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("finetune", "Fine-tune a sentence-pair classifier (QBQTC) with ce / label smoothing / PCL");
  auto opts = add_run_options(cmd);
  auto output = std::make_shared<std::string>();
  cmd->add_option("--output", *output, "write a JSON summary (best dev and test metrics) to this file");
  cmd->callback([opts, output, &exit_code] {
    Config config = opts->load();
    Logger log;
    const int threads = set_compute_threads(config.train.threads);
    const data::BertTokenizer tokenizer = load_tokenizer(config);
    const int K = config.data.num_classes;
    PairSet train = load_pair_set(config, "data.train", config.data.train, tokenizer, true, log);
    PairSet dev, test;
    if (!config.data.dev.empty()) dev = load_pair_set(config, "data.dev", config.data.dev, tokenizer, true, log);
    else log.warn("data.dev is empty: no model selection, the final weights are kept");
    if (!config.data.test.empty()) test = load_pair_set(config, "data.test", config.data.test, tokenizer, false, log);

    std::vector<double> pi = config.loss.propensities;
    if (pi.empty() && config.loss.type == "pcl")
      pi = propensities_from_counts(train.file.label_counts, config.data.train + " (data.train)");
    ClassificationLoss loss(config.loss, K, pi);
    SelfCommunicator tp("tp");
    const Backend backend(config);
    FinetuneTrainer trainer(config, tp, log, loss, tokenizer.vocab().pad_id(), backend.exec());
    load_init_weights(config, trainer.model(), log);
    log.info("finetune: " + std::to_string(trainer.model().table().total()) + " parameters, " +
             (backend.cuda() ? backend.describe() : std::to_string(threads) + " threads"));
    const std::string sha = tokenizer.vocab_sha256();
    const std::vector<std::string>& labels = config.data.labels;
    const bool save = !config.checkpoint.dir.empty();
    if (!save) log.warn("checkpoint.dir is empty: the fine-tuned model is not saved");
    trainer.on_best = [&](const FinetuneEval& best) {
      if (save) save_finetuned(best_checkpoint_dir(config), trainer.model(), config, sha, {{"dev", eval_json(best, labels)}});
    };
    const FinetuneSummary summary = trainer.run(train.encoded, dev.encoded);

    nlohmann::json result = {{"steps", summary.steps}, {"seconds", summary.seconds},
                             {"early_stopped", summary.early_stopped}, {"loss", loss.describe()}};
    if (summary.has_best) {
      result["dev"] = eval_json(summary.best, labels);
      log.info("best dev macro-F1 " + std::to_string(summary.best.metrics.macro_f1) + " at step " +
               std::to_string(summary.best.step));
    }
    bool test_labeled = !test.encoded.empty();
    for (const auto& e : test.encoded) test_labeled = test_labeled && e.label >= 0;
    if (test_labeled) {
      const int batch = config.train.micro_batch * config.train.grad_accum;
      PairPredictions p = predict_pairs(trainer.model(), test.encoded, batch, tokenizer.vocab().pad_id());
      const ClassificationMetrics m = score_predictions(p, test.encoded, K);
      log.info("test (" + config.data.test + ", best dev model):\n" + m.format_table(labels));
      result["test"] = m.to_json(labels);
      result["test"]["pairs_per_s"] = p.pairs_per_s();
    }
    if (save) {
      nlohmann::json info = {{"dev", result.value("dev", nlohmann::json())}, {"test", result.value("test", nlohmann::json())}};
      save_finetuned(best_checkpoint_dir(config), trainer.model(), config, sha, info);
      log.info("saved the selected model to " + best_checkpoint_dir(config));
    }
    if (!output->empty()) {
      std::ofstream out(*output, std::ios::trunc);
      out << result.dump(2) << "\n";
      if (!out) throw Error(*output + ": write failed");
    }
    exit_code = kExitOk;
  });
}

}  // namespace erlangshen::cli
