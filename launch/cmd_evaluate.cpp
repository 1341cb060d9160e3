// `erlangshen evaluate --config FILE [--checkpoint DIR] [--data FILE] [--output FILE]`: scores a fine-tuned
// classifier on a labeled sentence-pair file (default data.test): accuracy, macro-F1, per-class
// precision/recall/F1 and the confusion matrix as a table on stdout, and as JSON (`accuracy`, `macro_f1`,
// `per_class`, `confusion`, plus `count`, `pairs_per_s`) with --output. --random-init skips the checkpoint
// (throughput measurement).
#include <fstream>
#include <memory>

#include "launch/commands.h"
#include "launch/finetune_io.h"
#include "launch/run_options.h"
#include "model/finetune_trainer.h"
#include "runtime/backend.h"
#include "runtime/threading.h"

namespace erlangshen::cli {

void register_evaluate(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("evaluate", "Score a fine-tuned classifier: accuracy, macro-F1, per class, confusion");
  auto opts = add_run_options(cmd);
  struct Args {
    std::string checkpoint, data, output;
    int batch = 0;
    bool random_init = false;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("--checkpoint", a->checkpoint, "fine-tuned model folder (default: <checkpoint.dir>/best)");
  cmd->add_option("--data", a->data, "labeled JSON-lines file (default: data.test)");
  cmd->add_option("--output", a->output, "write the metrics as JSON to this file");
  cmd->add_option("--batch", a->batch, "pairs per forward pass (default: train.micro_batch x train.grad_accum)");
  cmd->add_flag("--random-init", a->random_init, "no checkpoint: random weights (to measure throughput)");
  cmd->callback([opts, a, &exit_code] {
    Config config = opts->load();
    Logger log;
    const int threads = set_compute_threads(config.train.threads);
    const data::BertTokenizer tokenizer = load_tokenizer(config);
    const std::string path = a->data.empty() ? config.data.test : a->data;
    PairSet set = load_pair_set(config, a->data.empty() ? "data.test" : "--data", path, tokenizer, true, log);
    SelfCommunicator tp("tp");
    const Backend backend(config);
    const std::string ckpt = a->random_init ? "" : (a->checkpoint.empty() ? best_checkpoint_dir(config) : a->checkpoint);
    auto model = load_classifier(config, ckpt, tp, log, backend.exec());
    const int batch = a->batch > 0 ? a->batch : config.train.micro_batch * config.train.grad_accum;
    const PairPredictions p = predict_pairs(*model, set.encoded, batch, tokenizer.vocab().pad_id());
    const ClassificationMetrics m = score_predictions(p, set.encoded, config.data.num_classes);
    std::printf("%s: %s", path.c_str(), m.format_table(config.data.labels).c_str());
    std::printf("%zu pairs in %.2fs: %.1f pairs/s, %.0f tokens/s (batch %d, padded to batch-longest, %d threads)\n",
                p.labels.size(), p.seconds, p.pairs_per_s(), p.tokens / std::max(1e-9, p.seconds), batch, threads);
    if (!a->output.empty()) {
      nlohmann::json j = m.to_json(config.data.labels);
      j["data"] = path;
      j["checkpoint"] = ckpt;
      j["pairs_per_s"] = p.pairs_per_s();
      j["seconds"] = p.seconds;
      std::ofstream out(a->output, std::ios::trunc);
      out << j.dump(2) << "\n";
      if (!out) throw Error(a->output + ": write failed");
    }
    exit_code = kExitOk;
  });
}

}  // namespace erlangshen::cli
