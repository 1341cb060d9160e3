// What `finetune`, `evaluate` and `predict` share: reading and encoding sentence-pair files per the config,
// the classification model from a fine-tuned folder, and writing that folder.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "data_pipeline/pair_dataset.h"
#include "model/megatron_bert.h"
#include "runtime/config.h"
#include "runtime/logging.h"

namespace erlangshen::cli {

data::PairReaderOptions pair_reader_options(const Config& config, bool labels_required);
// Tokenizer from data.vocab (error naming the key when unset).
data::BertTokenizer load_tokenizer(const Config& config);

struct PairSet {
  data::PairFile file;
  std::vector<data::EncodedPair> encoded;
};
// Reads `path` (`key` names the config key it came from, for messages) and encodes it with data.max_len.
PairSet load_pair_set(const Config& config, const std::string& key, const std::string& path,
                      const data::BertTokenizer& tokenizer, bool labels_required, const Logger& log);

// The folder the best fine-tuned model lives in: <checkpoint.dir>/best.
std::string best_checkpoint_dir(const Config& config);
// Writes model.safetensors + finetune.json (config, labels, vocab hash, `info`) into `dir` (created).
void save_finetuned(const std::string& dir, const MegatronBert<float>& model, const Config& config,
                    const std::string& vocab_sha256, const nlohmann::json& info);
// Loads checkpoint.init (when set) into a classification model: a DESIGN §6 checkpoint (directory or step
// folder, any TP layout, through ckpt::CheckpointReader) or a safetensors file / folder (HF export, fine-tuned
// folder). Every bert.* tensor must be present; the classifier is taken when present, else keeps its init.
void load_init_weights(const Config& config, MegatronBert<float>& model, const Logger& log);
// A classification model per the config, weights from `checkpoint` (a fine-tuned folder; classifier required),
// or freshly initialised from train.seed when `checkpoint` is empty; its memory where `exec` runs.
std::unique_ptr<MegatronBert<float>> load_classifier(const Config& config, const std::string& checkpoint,
                                                     Communicator& tp, const Logger& log, Exec exec = {});

}  // namespace erlangshen::cli
