#include "launch/finetune_io.h"

#include <filesystem>
#include <fstream>

#include "checkpoint/checkpoint_dir.h"
#include "checkpoint/reader.h"
#include "model/finetune_weights.h"
#include "runtime/check.h"
#include "runtime/timer.h"

namespace erlangshen::cli {

namespace fs = std::filesystem;

data::PairReaderOptions pair_reader_options(const Config& config, bool labels_required) {
  data::PairReaderOptions o;
  o.fields.a = config.data.fields.a;
  o.fields.b = config.data.fields.b;
  o.fields.label = config.data.fields.label;
  o.fields.id = config.data.fields.id;
  o.num_classes = config.data.num_classes;
  o.label_names = config.data.labels;
  o.labels_required = labels_required;
  o.skip_bad_lines = config.data.skip_bad_lines;
  return o;
}

data::BertTokenizer load_tokenizer(const Config& config) {
  if (config.data.vocab.empty()) throw Error(config.source + ": key 'data.vocab' must name the WordPiece vocab.txt");
  return data::BertTokenizer::from_file(config.data.vocab, config.data.lowercase);
}

PairSet load_pair_set(const Config& config, const std::string& key, const std::string& path,
                      const data::BertTokenizer& tokenizer, bool labels_required, const Logger& log) {
  if (path.empty()) throw Error(config.source + ": key '" + key + "' is empty");
  PairSet s;
  s.file = data::read_pair_file(path, pair_reader_options(config, labels_required));
  if (s.file.skipped > 0) {
    log.warn(path + ": skipped " + std::to_string(s.file.skipped) + " malformed lines (data.skip_bad_lines), e.g. " +
             s.file.problems.front());
  }
  Stopwatch watch;
  s.encoded = data::encode_pairs(s.file.examples, tokenizer, config.data.max_len);
  int64_t truncated = 0, tokens = 0;
  for (size_t i = 0; i < s.encoded.size(); ++i) {
    tokens += static_cast<int64_t>(s.encoded[i].ids.size());
    truncated += static_cast<int>(s.encoded[i].ids.size()) == config.data.max_len;
  }
  std::string counts;
  for (size_t k = 0; k < s.file.label_counts.size(); ++k)
    counts += (k ? " / " : "") + std::to_string(s.file.label_counts[k]);
  char line[256];
  std::snprintf(line, sizeof line, " (%s): %zu pairs, labels %s, mean %.1f tokens, %lld at data.max_len, %.2fs", key.c_str(),
                s.encoded.size(), counts.c_str(), s.encoded.empty() ? 0.0 : double(tokens) / s.encoded.size(),
                (long long)truncated, watch.seconds());
  log.info(path + line);
  return s;
}

std::string best_checkpoint_dir(const Config& config) {
  if (config.checkpoint.dir.empty()) throw Error(config.source + ": key 'checkpoint.dir' is empty (where the best model lives)");
  return (fs::path(config.checkpoint.dir) / "best").string();
}

void save_finetuned(const std::string& dir, const MegatronBert<float>& model, const Config& config,
                    const std::string& vocab_sha256, const nlohmann::json& info) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Error(dir + ": cannot create: " + ec.message());
  nlohmann::json meta = {{"kind", "erlangshen-finetuned"}, {"num_classes", config.model.num_classes},
                         {"vocab_sha256", vocab_sha256}};
  std::vector<float> staged;  // CUDA: the parameters copied to the host first
  save_safetensors((fs::path(dir) / "model.safetensors").string(), model.table(),
                   host_view(model.exec(), model.params(), model.num_params(), staged), meta);
  nlohmann::json j = info;
  j["format"] = "erlangshen-finetuned";
  j["version"] = 1;
  j["vocab_sha256"] = vocab_sha256;
  j["labels"] = config.data.labels;
  j["num_classes"] = config.model.num_classes;
  j["config"] = dump_config(config);
  const std::string path = (fs::path(dir) / "finetune.json").string();
  std::ofstream out(path + ".tmp", std::ios::trunc);
  out << j.dump(2) << "\n";
  out.close();
  if (!out) throw Error(path + ": write failed");
  fs::rename(path + ".tmp", path, ec);
  if (ec) throw Error(path + ": cannot rename: " + ec.message());
}

void load_init_weights(const Config& config, MegatronBert<float>& model, const Logger& log) {
  const std::string& path = config.checkpoint.init;
  if (path.empty()) return;
  const bool is_pretrain_checkpoint =
      ckpt::is_complete(path) || (fs::is_directory(path) && ckpt::find_latest(path).has_value());
  if (!is_pretrain_checkpoint) {  // HF folder (erlangshen export), fine-tuned folder, or a .safetensors file
    WeightLoadReport r;
    model.edit_params_on_host([&](float* p) { r = load_weights_by_name(path, model.table(), p, {"bert."}); });
    log.info("checkpoint.init: loaded " + std::to_string(r.loaded.size()) + " tensors from " + r.file + ", ignored " +
             std::to_string(r.unused.size()) + ", " + std::to_string(r.missing.size()) + " freshly initialised");
    return;
  }
  const ckpt::CheckpointReader reader(path);
  ckpt::LoadReport r;
  model.edit_params_on_host([&](float* p) { r = reader.load_params(model.table(), p, /*allow_missing=*/true); });
  std::vector<std::string> absent;
  for (const auto& name : r.missing)
    if (name.compare(0, 5, "bert.") == 0) absent.push_back(name);
  if (!absent.empty())
    throw Error("checkpoint.init: " + reader.folder() + " lacks " + std::to_string(absent.size()) +
                " encoder tensors, e.g. " + absent.front() + " (is it a checkpoint of this model shape?)");
  log.info("checkpoint.init: loaded the encoder from " + reader.folder() + " (" + std::to_string(r.unused.size()) +
           " pretraining-head tensors ignored, " + std::to_string(r.missing.size()) + " classifier tensors initialised)");
}

std::unique_ptr<MegatronBert<float>> load_classifier(const Config& config, const std::string& checkpoint,
                                                     Communicator& tp, const Logger& log, Exec exec) {
  if (config.model.num_classes != config.data.num_classes)
    throw Error(config.source + ": model.num_classes (" + std::to_string(config.model.num_classes) +
                ") and data.num_classes (" + std::to_string(config.data.num_classes) + ") differ");
  auto model = std::make_unique<MegatronBert<float>>(config.model, ModelHeads::Classification, tp, 0.0, 0.0, exec);
  model->initialize(config.train.seed);
  if (checkpoint.empty()) {
    log.warn("no checkpoint: the classifier has random weights (throughput measurement only)");
    return model;
  }
  const fs::path meta = fs::is_directory(checkpoint) ? fs::path(checkpoint) / "finetune.json" : fs::path();
  if (!meta.empty() && fs::exists(meta)) {
    nlohmann::json j = nlohmann::json::parse(std::ifstream(meta), nullptr, false);
    if (!j.is_discarded() && j.contains("labels") && j["labels"].get<std::vector<std::string>>() != config.data.labels)
      throw Error(meta.string() + ": the model was trained with other data.labels than the config gives");
  }
  WeightLoadReport r;
  model->edit_params_on_host(
      [&](float* p) { r = load_weights_by_name(checkpoint, model->table(), p, {"bert.", "classifier."}); });
  log.info("loaded " + std::to_string(r.loaded.size()) + " tensors from " + r.file);
  return model;
}

}  // namespace erlangshen::cli
