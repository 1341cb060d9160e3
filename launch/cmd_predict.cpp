// `erlangshen predict --config FILE [--checkpoint DIR] [--data FILE] --output FILE`: writes the CLUE submission
// file, one JSON line {"id": ..., "label": "..."} per pair of the input (default data.test), in input order.
#include <fstream>
#include <memory>

#include "launch/commands.h"
#include "launch/finetune_io.h"
#include "launch/run_options.h"
#include "model/finetune_trainer.h"
#include "runtime/backend.h"
#include "runtime/threading.h"

namespace erlangshen::cli {

void register_predict(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("predict", "Write CLUE submission lines {\"id\", \"label\"} for a sentence-pair file");
  auto opts = add_run_options(cmd);
  struct Args {
    std::string checkpoint, data, output;
    int batch = 0;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("--checkpoint", a->checkpoint, "fine-tuned model folder (default: <checkpoint.dir>/best)");
  cmd->add_option("--data", a->data, "JSON-lines file, labels not needed (default: data.test)");
  cmd->add_option("--output", a->output, "submission file to write")->required();
  cmd->add_option("--batch", a->batch, "pairs per forward pass (default: train.micro_batch x train.grad_accum)");
  cmd->callback([opts, a, &exit_code] {
    Config config = opts->load();
    Logger log;
    set_compute_threads(config.train.threads);
    const data::BertTokenizer tokenizer = load_tokenizer(config);
    const std::string path = a->data.empty() ? config.data.test : a->data;
    PairSet set = load_pair_set(config, a->data.empty() ? "data.test" : "--data", path, tokenizer, false, log);
    SelfCommunicator tp("tp");
    const Backend backend(config);
    auto model = load_classifier(config, a->checkpoint.empty() ? best_checkpoint_dir(config) : a->checkpoint, tp, log,
                                 backend.exec());
    const int batch = a->batch > 0 ? a->batch : config.train.micro_batch * config.train.grad_accum;
    const PairPredictions p = predict_pairs(*model, set.encoded, batch, tokenizer.vocab().pad_id());
    std::ofstream out(a->output, std::ios::trunc);
    if (!out) throw Error(a->output + ": cannot write");
    for (size_t i = 0; i < p.labels.size(); ++i) {
      nlohmann::ordered_json j;
      j["id"] = set.file.examples[i].id;
      j["label"] = data::label_to_string(p.labels[i], config.data.labels);
      out << j.dump() << "\n";
    }
    out.close();
    if (!out) throw Error(a->output + ": write failed");
    log.info("wrote " + std::to_string(p.labels.size()) + " predictions to " + a->output + " (" +
             std::to_string(static_cast<int>(p.pairs_per_s())) + " pairs/s)");
    exit_code = kExitOk;
  });
}

}  // namespace erlangshen::cli
