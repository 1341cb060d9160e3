#include "checkpoint/hf_format.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>

#include "checkpoint/checkpoint_dir.h"
#include "checkpoint/file_io.h"
#include "checkpoint/manifest.h"
#include "checkpoint/reader.h"
#include "checkpoint/safetensors.h"
#include "checkpoint/shard_writer.h"
#include "data_pipeline/sha256.h"
#include "model/param_layout.h"
#include "runtime/check.h"

namespace erlangshen::ckpt {
namespace fs = std::filesystem;

namespace {

const char* kWord = "bert.embeddings.word_embeddings.weight";
const char* kMlmBias = "cls.predictions.bias";

bool vocab_rows(const std::string& name) { return name == kWord || name == kMlmBias; }

nlohmann::ordered_json hf_config(const ModelConfig& m, const std::string& heads, double dropout, double attn_dropout) {
  nlohmann::ordered_json j;
  j["architectures"] = {heads == "classification" ? "MegatronBertForSequenceClassification" : "MegatronBertForPreTraining"};
  j["model_type"] = "megatron-bert";
  j["vocab_size"] = m.vocab_size;
  j["hidden_size"] = m.hidden;
  j["num_hidden_layers"] = m.layers;
  j["num_attention_heads"] = m.heads;
  j["intermediate_size"] = m.ffn;
  j["hidden_act"] = m.activation == Activation::GeluTanh ? "gelu_new" : "gelu";
  j["hidden_dropout_prob"] = dropout;
  j["attention_probs_dropout_prob"] = attn_dropout;
  j["max_position_embeddings"] = m.max_positions;
  j["type_vocab_size"] = m.type_vocab;
  j["initializer_range"] = m.init_std;
  j["layer_norm_eps"] = m.layernorm_eps;
  j["pad_token_id"] = 0;
  j["position_embedding_type"] = "absolute";
  j["torch_dtype"] = "float32";
  if (heads == "classification") j["num_labels"] = m.num_classes;
  return j;
}

// A value of the run's config dump ("key: value" lines), or `fallback`.
double config_value(const std::string& dump, const std::string& key, double fallback) {
  const std::string needle = key + ": ";
  const size_t at = dump.find("\n" + needle);
  const size_t pos = dump.rfind(needle, 0) == 0 ? 0 : (at == std::string::npos ? std::string::npos : at + 1);
  if (pos == std::string::npos) return fallback;
  try {
    return std::stod(dump.substr(pos + needle.size()));
  } catch (...) {
    return fallback;
  }
}

// The tensors of an HF folder: one reader per safetensors file and where each name lives.
struct HfWeights {
  std::map<std::string, std::unique_ptr<SafetensorsReader>> files;
  std::map<std::string, SafetensorsReader*> where;
  const TensorInfo* find(const std::string& name) const {
    auto it = where.find(name);
    return it == where.end() ? nullptr : it->second->find(name);
  }
};

HfWeights open_hf_weights(const std::string& dir) {
  HfWeights w;
  std::vector<std::string> names;
  const fs::path single = fs::path(dir) / "model.safetensors", index = fs::path(dir) / "model.safetensors.index.json";
  if (fs::exists(single)) {
    names.push_back("model.safetensors");
  } else if (fs::exists(index)) {
    const auto j = nlohmann::json::parse(read_text_file(index.string()));
    std::set<std::string> unique;
    for (auto it = j.at("weight_map").begin(); it != j.at("weight_map").end(); ++it) unique.insert(it->get<std::string>());
    names.assign(unique.begin(), unique.end());
  } else if (fs::exists(fs::path(dir) / "pytorch_model.bin")) {
    throw Error(dir + " has only pytorch_model.bin (a pickle); convert it first: /usr/bin/python3 -c \"import torch, "
                "sys; from safetensors.torch import save_file; sd = torch.load(sys.argv[1], map_location='cpu'); "
                "save_file({k: v.contiguous() for k, v in sd.items()}, sys.argv[2])\" " + dir + "/pytorch_model.bin " +
                dir + "/model.safetensors");
  } else {
    throw Error(dir + ": no model.safetensors or model.safetensors.index.json");
  }
  for (const auto& n : names) {
    auto r = std::make_unique<SafetensorsReader>((fs::path(dir) / n).string());
    for (const auto& t : r->tensors()) w.where[t.name] = r.get();
    w.files[n] = std::move(r);
  }
  return w;
}

}  // namespace

ExportReport export_hf(const std::string& checkpoint, const std::string& out_dir, const std::string& vocab_override) {
  CheckpointReader reader(checkpoint);
  const Manifest& m = reader.manifest();
  ExportReport report;
  report.folder = reader.folder();
  report.step = m.step;
  const ModelHeads heads = m.heads == "classification" ? ModelHeads::Classification : ModelHeads::Pretraining;
  const ParamTable names = build_param_table(m.model, heads, 0, 1);  // HF order and names
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec) throw Error("export: cannot create " + out_dir + ": " + ec.message());

  // Merge every tensor (global shapes), vocab rows cut to vocab_size.
  std::vector<std::vector<float>> data;
  std::vector<std::pair<std::string, std::vector<int64_t>>> shapes;
  data.reserve(names.entries().size() + 2);
  for (const auto& e : names.entries()) {
    std::vector<float> g = reader.read_global(e.spec.name);
    std::vector<int64_t> shape = reader.global_shape(e.spec.name);
    if (vocab_rows(e.spec.name)) {
      const int64_t cols = shape.size() == 2 ? shape[1] : 1;
      shape[0] = m.model.vocab_size;
      g.resize(static_cast<size_t>(shape[0] * cols));
    }
    data.push_back(std::move(g));
    shapes.emplace_back(e.spec.name, shape);
  }
  SafetensorsWriter w;
  for (size_t i = 0; i < data.size(); ++i) w.add(shapes[i].first, shapes[i].second, data[i].data());
  if (heads == ModelHeads::Pretraining) {  // tied decoder, as in HF's state dict
    for (size_t i = 0; i < data.size(); ++i) {
      if (shapes[i].first == kWord) w.add("cls.predictions.decoder.weight", shapes[i].second, data[i].data());
      if (shapes[i].first == kMlmBias) w.add("cls.predictions.decoder.bias", shapes[i].second, data[i].data());
    }
  }
  w.set_metadata("format", "pt");
  w.set_metadata("erlangshen.step", std::to_string(m.step));
  const auto written = w.write((fs::path(out_dir) / "model.safetensors").string());
  report.tensors = data.size() + (heads == ModelHeads::Pretraining ? 2 : 0);
  report.bytes = written.bytes;

  const double dropout = config_value(m.config_text, "train.dropout", 0.1);
  const double attn = config_value(m.config_text, "train.attention_dropout", 0.1);
  write_file_atomic((fs::path(out_dir) / "config.json").string(), hf_config(m.model, m.heads, dropout, attn).dump(2) + "\n");
  const std::string vocab = !vocab_override.empty() ? vocab_override
                           : !m.vocab_file.empty()   ? (fs::path(reader.folder()) / m.vocab_file).string()
                                                     : std::string();
  if (!vocab.empty()) {
    const std::string text = read_text_file(vocab);
    const int64_t lines = std::count(text.begin(), text.end(), '\n') + (!text.empty() && text.back() != '\n');
    if (lines != m.model.vocab_size)
      throw Error("export: " + vocab + " has " + std::to_string(lines) + " entries, the model's vocab_size is " +
                  std::to_string(m.model.vocab_size));
    copy_file_synced(vocab, (fs::path(out_dir) / "vocab.txt").string());
    report.vocab = true;
    const bool lower = config_value(m.config_text, "data.lowercase", 1.0) != 0.0;
    const nlohmann::ordered_json tok = {{"tokenizer_class", "BertTokenizer"}, {"do_lower_case", lower},
                                        {"model_max_length", m.model.max_positions}};
    write_file_atomic((fs::path(out_dir) / "tokenizer_config.json").string(), tok.dump(2) + "\n");
  }
  return report;
}

ModelConfig model_config_from_hf(const std::string& path) {
  const nlohmann::json j = read_json_file(path);
  const std::string type = j.value("model_type", std::string());
  if (type != "megatron-bert")
    throw Error(path + ": model_type is '" + type + "', expected 'megatron-bert' (MegatronBert*)");
  try {
    ModelConfig m;
    m.hidden = j.at("hidden_size").get<int>();
    m.layers = j.at("num_hidden_layers").get<int>();
    m.heads = j.at("num_attention_heads").get<int>();
    m.ffn = j.at("intermediate_size").get<int>();
    m.vocab_size = j.at("vocab_size").get<int>();
    m.max_positions = j.value("max_position_embeddings", 512);
    m.type_vocab = j.value("type_vocab_size", 2);
    m.layernorm_eps = j.value("layer_norm_eps", 1e-12);
    m.init_std = j.value("initializer_range", 0.02);
    const std::string act = j.value("hidden_act", std::string("gelu"));
    if (act == "gelu_new" || act == "gelu_pytorch_tanh" || act == "gelu_fast") m.activation = Activation::GeluTanh;
    else if (act == "gelu") m.activation = Activation::GeluExact;
    else throw Error("hidden_act '" + act + "' is not supported (gelu, gelu_new)");
    if (j.contains("num_labels")) m.num_classes = j.at("num_labels").get<int>();
    else if (j.contains("id2label")) m.num_classes = static_cast<int>(j.at("id2label").size());
    return m;
  } catch (const Error& e) {
    throw Error(path + ": " + e.what());
  } catch (const std::exception& e) {
    throw Error(path + ": " + e.what());
  }
}

ImportReport import_hf(const std::string& hf_dir, const std::string& out_checkpoint, uint64_t seed) {
  ImportReport report;
  ModelConfig cfg = model_config_from_hf((fs::path(hf_dir) / "config.json").string());
  HfWeights hf = open_hf_weights(hf_dir);
  // A bare MegatronBertModel has no "bert." prefix.
  const bool bare = !hf.find(kWord) && hf.find("embeddings.word_embeddings.weight");
  auto hf_name = [&](const std::string& ours) {
    if (bare && ours.rfind("bert.", 0) == 0) return ours.substr(5);
    return ours;
  };
  const bool classification = hf.find("classifier.weight") != nullptr;
  if (classification) cfg.num_classes = static_cast<int>(hf.find("classifier.weight")->shape.at(0));
  const ModelHeads heads = classification ? ModelHeads::Classification : ModelHeads::Pretraining;
  report.heads = classification ? "classification" : "pretraining";
  report.model = cfg;

  const ParamTable table = build_param_table(cfg, heads, 0, 1);
  std::vector<float> params(table.total());
  initialize_parameters(table, params.data(), seed);
  std::set<std::string> used;
  for (const auto& e : table.entries()) {
    const std::string name = hf_name(e.spec.name);
    const TensorInfo* t = hf.find(name);
    if (!t) {
      report.initialized.push_back(e.spec.name);
      continue;
    }
    used.insert(name);
    const auto& want = e.spec.global_shape;
    bool ok = t->shape.size() == want.size();
    for (size_t d = 0; ok && d < want.size(); ++d) ok = t->shape[d] == want[d] || (d == 0 && vocab_rows(e.spec.name));
    if (!ok || (vocab_rows(e.spec.name) && t->shape[0] > want[0]))
      throw Error(hf.where.at(name)->path() + ": tensor " + name + " has an unexpected shape for config.json");
    float* dst = params.data() + e.offset;
    hf.where.at(name)->read_f32(name, dst);
    if (vocab_rows(e.spec.name) && t->shape[0] < want[0]) {  // pad: inert rows
      const int64_t cols = want.size() == 2 ? want[1] : 1;
      const float fill = e.spec.name == kMlmBias ? kPaddedLogitBias : 0.0f;
      std::fill(dst + t->shape[0] * cols, dst + want[0] * cols, fill);
      if (e.spec.name == kWord) report.padding_rows = want[0] - t->shape[0];
    }
  }
  for (const auto& [name, file] : hf.where) {
    const bool tied = name == "cls.predictions.decoder.weight" || name == "cls.predictions.decoder.bias";
    if (!used.count(name) && !tied && name.find("position_ids") == std::string::npos) report.ignored.push_back(name);
  }
  if (std::find(report.initialized.begin(), report.initialized.end(), kWord) != report.initialized.end())
    throw Error(hf_dir + ": no word embeddings (" + hf_name(kWord) + "): not a MegatronBert checkpoint");

  // Write the checkpoint: step 0, TP=1, no optimizer state, no data cursor.
  std::error_code ec;
  fs::create_directories(out_checkpoint, ec);
  if (ec) throw Error("import: cannot create " + out_checkpoint + ": " + ec.message());
  const std::string temp = (fs::path(out_checkpoint) / temp_folder_name(0)).string();
  fs::remove_all(temp, ec);
  fs::create_directories(temp);
  write_model_shard(temp, table, params.data());
  Manifest man;
  man.step = 0;
  man.model = cfg;
  man.heads = report.heads;
  const fs::path vocab = fs::path(hf_dir) / "vocab.txt";
  if (fs::exists(vocab)) {
    copy_file_synced(vocab.string(), (fs::path(temp) / "vocab.txt").string());
    man.vocab_file = "vocab.txt";
    man.vocab_sha256 = data::sha256_file(vocab.string());
  }
  man.config_text = "imported from " + fs::absolute(hf_dir).string() + "\n";
  assemble_manifest(temp, man, false);
  sync_directory(temp);
  report.checkpoint_folder = publish(out_checkpoint, temp, 0);
  return report;
}

}  // namespace erlangshen::ckpt
