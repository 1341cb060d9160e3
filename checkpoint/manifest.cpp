#include "checkpoint/manifest.h"

#include <sstream>

#include "checkpoint/file_io.h"
#include "runtime/check.h"

namespace erlangshen::ckpt {

const char* kind_name(TensorKind k) {
  switch (k) {
    case TensorKind::Param: return "param";
    case TensorKind::ExpAvg: return "exp_avg";
    case TensorKind::ExpAvgSq: return "exp_avg_sq";
  }
  return "?";
}

TensorKind kind_from_name(const std::string& s) {
  if (s == "param") return TensorKind::Param;
  if (s == "exp_avg") return TensorKind::ExpAvg;
  if (s == "exp_avg_sq") return TensorKind::ExpAvgSq;
  throw Error("unknown tensor kind '" + s + "'");
}

nlohmann::json model_config_to_json(const ModelConfig& m) {
  return {{"hidden", m.hidden},
          {"layers", m.layers},
          {"heads", m.heads},
          {"ffn", m.ffn},
          {"vocab_size", m.vocab_size},
          {"vocab_pad_multiple", m.vocab_pad_multiple},
          {"max_positions", m.max_positions},
          {"type_vocab", m.type_vocab},
          {"activation", activation_name(m.activation)},
          {"layernorm_eps", m.layernorm_eps},
          {"init_std", m.init_std},
          {"scaled_output_init", m.scaled_output_init},
          {"num_classes", m.num_classes}};
}

ModelConfig model_config_from_json(const nlohmann::json& j) {
  ModelConfig m;
  m.hidden = j.at("hidden").get<int>();
  m.layers = j.at("layers").get<int>();
  m.heads = j.at("heads").get<int>();
  m.ffn = j.at("ffn").get<int>();
  m.vocab_size = j.at("vocab_size").get<int>();
  m.vocab_pad_multiple = j.value("vocab_pad_multiple", m.vocab_pad_multiple);
  m.max_positions = j.at("max_positions").get<int>();
  m.type_vocab = j.value("type_vocab", m.type_vocab);
  const std::string act = j.value("activation", std::string("gelu_tanh"));
  m.activation = act == "gelu" ? Activation::GeluExact : Activation::GeluTanh;
  m.layernorm_eps = j.value("layernorm_eps", m.layernorm_eps);
  m.init_std = j.value("init_std", m.init_std);
  m.scaled_output_init = j.value("scaled_output_init", m.scaled_output_init);
  m.num_classes = j.value("num_classes", m.num_classes);
  return m;
}

std::string model_mismatch(const ModelConfig& a, const ModelConfig& b) {
  std::ostringstream os;
  auto cmp = [&](const char* key, auto x, auto y) {
    if (x != y) os << "model." << key << ": checkpoint " << x << ", config " << y << "\n";
  };
  cmp("hidden", a.hidden, b.hidden);
  cmp("layers", a.layers, b.layers);
  cmp("heads", a.heads, b.heads);
  cmp("ffn", a.ffn, b.ffn);
  cmp("vocab_size", a.vocab_size, b.vocab_size);
  cmp("max_positions", a.max_positions, b.max_positions);
  cmp("type_vocab", a.type_vocab, b.type_vocab);
  cmp("activation", std::string(activation_name(a.activation)), std::string(activation_name(b.activation)));
  return os.str();
}

nlohmann::ordered_json Manifest::to_json() const {
  nlohmann::ordered_json j;
  j["format"] = kManifestFormat;
  j["version"] = version;
  j["step"] = step;
  j["consumed_samples"] = consumed_samples;
  j["model"] = model_config_to_json(model);
  j["heads"] = heads;
  j["vocab"] = {{"sha256", vocab_sha256}, {"file", vocab_file}};
  j["layout"] = {{"tp", tp}, {"dp", dp}, {"zero1", zero1}};
  j["schedule"] = schedule;
  j["rng"] = rng;
  j["optimizer"] = optimizer;
  j["data_cursors"] = data_cursors;
  j["config"] = config_text;
  nlohmann::ordered_json files_j = nlohmann::ordered_json::array();
  for (const auto& f : files) files_j.push_back({{"name", f.name}, {"bytes", f.bytes}});
  j["files"] = files_j;
  nlohmann::ordered_json index = nlohmann::ordered_json::array();
  for (const auto& t : tensors) {
    index.push_back({{"name", t.name},
                     {"kind", kind_name(t.kind)},
                     {"dtype", "F32"},
                     {"global_shape", t.global_shape},
                     {"split_axis", t.split_axis},
                     {"tp_rank", t.tp_rank},
                     {"dp_rank", t.dp_rank},
                     {"local_shape", t.local_shape},
                     {"local_offset", t.local_offset},
                     {"range", {t.range_begin, t.range_end}},
                     {"file", t.file},
                     {"key", t.key},
                     {"crc32c", t.crc32c}});
  }
  j["tensors"] = index;
  return j;
}

Manifest Manifest::from_json(const nlohmann::json& j, const std::string& where) {
  try {
    if (j.value("format", std::string()) != kManifestFormat)
      throw Error("not an erlangshen checkpoint manifest (format is not '" + std::string(kManifestFormat) + "')");
    Manifest m;
    m.version = j.at("version").get<int>();
    if (m.version > kManifestVersion)
      throw Error("manifest version " + std::to_string(m.version) + " is newer than this build understands (" +
                  std::to_string(kManifestVersion) + ")");
    m.step = j.at("step").get<int64_t>();
    m.consumed_samples = j.at("consumed_samples").get<int64_t>();
    m.model = model_config_from_json(j.at("model"));
    m.heads = j.value("heads", std::string("pretraining"));
    m.vocab_sha256 = j.at("vocab").value("sha256", std::string());
    m.vocab_file = j.at("vocab").value("file", std::string());
    m.tp = j.at("layout").at("tp").get<int>();
    m.dp = j.at("layout").at("dp").get<int>();
    m.zero1 = j.at("layout").value("zero1", false);
    m.schedule = j.value("schedule", nlohmann::json::object());
    m.rng = j.value("rng", nlohmann::json::object());
    m.optimizer = j.value("optimizer", nlohmann::json::object());
    for (const auto& c : j.value("data_cursors", nlohmann::json::array())) m.data_cursors.push_back(c);
    m.config_text = j.value("config", std::string());
    for (const auto& f : j.at("files")) m.files.push_back({f.at("name").get<std::string>(), f.at("bytes").get<uint64_t>()});
    for (const auto& t : j.at("tensors")) {
      TensorRecord r;
      r.name = t.at("name").get<std::string>();
      r.kind = kind_from_name(t.at("kind").get<std::string>());
      r.global_shape = t.at("global_shape").get<std::vector<int64_t>>();
      r.split_axis = t.at("split_axis").get<int>();
      r.tp_rank = t.at("tp_rank").get<int>();
      r.dp_rank = t.at("dp_rank").get<int>();
      r.local_shape = t.at("local_shape").get<std::vector<int64_t>>();
      r.local_offset = t.at("local_offset").get<int64_t>();
      const auto range = t.at("range").get<std::vector<int64_t>>();
      r.range_begin = range.at(0);
      r.range_end = range.at(1);
      r.file = t.at("file").get<std::string>();
      r.key = t.at("key").get<std::string>();
      r.crc32c = t.value("crc32c", std::string());
      m.tensors.push_back(std::move(r));
    }
    return m;
  } catch (const Error& e) {
    throw Error(where + ": " + e.what());
  } catch (const std::exception& e) {
    throw Error(where + ": malformed manifest (" + e.what() + ")");
  }
}

Manifest Manifest::load(const std::string& dir) {
  const std::string path = dir + "/manifest.json";
  const nlohmann::json j = read_json_file(path);
  return from_json(j, path);
}

bool Manifest::has_optimizer() const {
  for (const auto& t : tensors)
    if (t.kind != TensorKind::Param) return true;
  return false;
}

}  // namespace erlangshen::ckpt
