#include "runtime/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <sstream>

#include "runtime/check.h"

namespace erlangshen {

const char* activation_name(Activation a) { return a == Activation::GeluTanh ? "gelu_tanh" : "gelu"; }


int ModelConfig::padded_vocab(int tp) const {
  const int multiple = vocab_pad_multiple * tp;
  return (vocab_size + multiple - 1) / multiple * multiple;
}

namespace {

// One configuration key: how to read a YAML node into the config and how to print it back.
struct KeyDef {
  std::string name;
  std::function<void(Config&, const YAML::Node&, const std::string& where)> set;
  std::function<std::string(const Config&)> get;
};

std::string where_of(const std::string& source, const std::string& key) {
  return source + ": key '" + key + "'";
}

template <class T>
T read_scalar(const YAML::Node& node, const std::string& where, const char* type_name) {
  if (!node.IsScalar()) throw Error(where + ": expected " + type_name + ", got a " + (node.IsSequence() ? "list" : "map"));
  try {
    return node.as<T>();
  } catch (const YAML::Exception&) {
    throw Error(where + ": expected " + type_name + ", got '" + node.Scalar() + "'");
  }
}

// Builders for typed keys with an inclusive range.
template <class Section, class T>
KeyDef number_key(const std::string& name, Section Config::*section, T Section::*member, double lo, double hi) {
  KeyDef k;
  k.name = name;
  k.set = [=](Config& c, const YAML::Node& n, const std::string& where) {
    T v;
    if constexpr (std::is_integral_v<T>) {
      // Accept "1e3"-style integers only when they are exact.
      double d = read_scalar<double>(n, where, "an integer");
      if (std::floor(d) != d) throw Error(where + ": expected an integer, got '" + n.Scalar() + "'");
      v = static_cast<T>(d);
    } else {
      v = read_scalar<T>(n, where, "a number");
    }
    if (!(static_cast<double>(v) >= lo && static_cast<double>(v) <= hi)) {
      std::ostringstream os;
      os << where << ": value " << n.Scalar() << " is out of range [" << lo << ", " << hi << "]";
      throw Error(os.str());
    }
    (c.*section).*member = v;
  };
  k.get = [=](const Config& c) {
    std::ostringstream os;
    os.precision(17);
    os << (c.*section).*member;
    return os.str();
  };
  return k;
}

template <class Section>
KeyDef bool_key(const std::string& name, Section Config::*section, bool Section::*member) {
  KeyDef k;
  k.name = name;
  k.set = [=](Config& c, const YAML::Node& n, const std::string& where) {
    (c.*section).*member = read_scalar<bool>(n, where, "true or false");
  };
  k.get = [=](const Config& c) { return std::string((c.*section).*member ? "true" : "false"); };
  return k;
}

template <class Section>
KeyDef string_key(const std::string& name, Section Config::*section, std::string Section::*member,
                  std::vector<std::string> choices = {}) {
  KeyDef k;
  k.name = name;
  k.set = [=](Config& c, const YAML::Node& n, const std::string& where) {
    std::string v = n.IsNull() ? std::string() : read_scalar<std::string>(n, where, "a string");
    if (!choices.empty() && std::find(choices.begin(), choices.end(), v) == choices.end()) {
      std::string all;
      for (auto& ch : choices) all += (all.empty() ? "" : ", ") + ch;
      throw Error(where + ": '" + v + "' is not one of: " + all);
    }
    (c.*section).*member = v;
  };
  k.get = [=](const Config& c) { return (c.*section).*member; };
  return k;
}

template <class Section, class T>
KeyDef list_key(const std::string& name, Section Config::*section, std::vector<T> Section::*member) {
  KeyDef k;
  k.name = name;
  k.set = [=](Config& c, const YAML::Node& n, const std::string& where) {
    std::vector<T> out;
    if (n.IsNull()) {
    } else if (n.IsScalar()) {
      out.push_back(read_scalar<T>(n, where, "a list"));
    } else if (n.IsSequence()) {
      for (size_t i = 0; i < n.size(); ++i) out.push_back(read_scalar<T>(n[i], where + "[" + std::to_string(i) + "]", "a scalar"));
    } else {
      throw Error(where + ": expected a list");
    }
    (c.*section).*member = out;
  };
  k.get = [=](const Config& c) {
    std::ostringstream os;
    os << "[";
    bool first = true;
    for (auto& v : (c.*section).*member) {
      os << (first ? "" : ", ") << v;
      first = false;
    }
    os << "]";
    return os.str();
  };
  return k;
}

const std::vector<KeyDef>& key_table() {
  static const std::vector<KeyDef> table = [] {
    constexpr double kBig = 1e18;
    using C = Config;
    std::vector<KeyDef> t;
    // model
    t.push_back(number_key("model.hidden", &C::model, &ModelConfig::hidden, 8, 65536));
    t.push_back(number_key("model.layers", &C::model, &ModelConfig::layers, 1, 1024));
    t.push_back(number_key("model.heads", &C::model, &ModelConfig::heads, 1, 1024));
    t.push_back(number_key("model.ffn", &C::model, &ModelConfig::ffn, 8, 1 << 20));
    t.push_back(number_key("model.vocab_size", &C::model, &ModelConfig::vocab_size, 8, 1 << 24));
    t.push_back(number_key("model.vocab_pad_multiple", &C::model, &ModelConfig::vocab_pad_multiple, 1, 4096));
    t.push_back(number_key("model.max_positions", &C::model, &ModelConfig::max_positions, 2, 1 << 16));
    t.push_back(number_key("model.type_vocab", &C::model, &ModelConfig::type_vocab, 1, 16));
    {
      KeyDef k;
      k.name = "model.activation";
      k.set = [](Config& c, const YAML::Node& n, const std::string& where) {
        std::string v = read_scalar<std::string>(n, where, "a string");
        if (v == "gelu_tanh" || v == "gelu_new" || v == "gelu_pytorch_tanh") c.model.activation = Activation::GeluTanh;
        else if (v == "gelu") c.model.activation = Activation::GeluExact;
        else throw Error(where + ": '" + v + "' is not one of: gelu_tanh (alias gelu_new), gelu");
      };
      k.get = [](const Config& c) { return std::string(activation_name(c.model.activation)); };
      t.push_back(k);
    }
    t.push_back(number_key("model.layernorm_eps", &C::model, &ModelConfig::layernorm_eps, 0.0, 1.0));
    t.push_back(number_key("model.init_std", &C::model, &ModelConfig::init_std, 0.0, 10.0));
    t.push_back(bool_key("model.scaled_output_init", &C::model, &ModelConfig::scaled_output_init));
    t.push_back(number_key("model.num_classes", &C::model, &ModelConfig::num_classes, 2, 1 << 16));
    // train
    t.push_back(number_key("train.steps", &C::train, &TrainConfig::steps, 1, kBig));
    t.push_back(number_key("train.micro_batch", &C::train, &TrainConfig::micro_batch, 1, 1 << 20));
    t.push_back(number_key("train.grad_accum", &C::train, &TrainConfig::grad_accum, 1, 1 << 20));
    t.push_back(number_key("train.seq_len", &C::train, &TrainConfig::seq_len, 8, 1 << 16));
    t.push_back(number_key("train.lr", &C::train, &TrainConfig::lr, 0.0, 10.0));
    t.push_back(number_key("train.min_lr", &C::train, &TrainConfig::min_lr, 0.0, 10.0));
    t.push_back(number_key("train.warmup_steps", &C::train, &TrainConfig::warmup_steps, 0, kBig));
    t.push_back(string_key("train.decay", &C::train, &TrainConfig::decay, {"linear", "cosine", "constant"}));
    t.push_back(number_key("train.weight_decay", &C::train, &TrainConfig::weight_decay, 0.0, 10.0));
    t.push_back(number_key("train.clip_grad", &C::train, &TrainConfig::clip_grad, 0.0, 1e9));
    t.push_back(number_key("train.beta1", &C::train, &TrainConfig::beta1, 0.0, 0.999999));
    t.push_back(number_key("train.beta2", &C::train, &TrainConfig::beta2, 0.0, 0.999999999));
    t.push_back(number_key("train.adam_eps", &C::train, &TrainConfig::adam_eps, 0.0, 1.0));
    t.push_back(number_key("train.seed", &C::train, &TrainConfig::seed, 0, 1.8e19));
    t.push_back(number_key("train.dropout", &C::train, &TrainConfig::dropout, 0.0, 0.99));
    t.push_back(number_key("train.attention_dropout", &C::train, &TrainConfig::attention_dropout, 0.0, 0.99));
    t.push_back(number_key("train.stop_at", &C::train, &TrainConfig::stop_at, 0, kBig));
    t.push_back(number_key("train.threads", &C::train, &TrainConfig::threads, 0, 4096));
    t.push_back(string_key("train.device", &C::train, &TrainConfig::device, {"cpu", "cuda"}));
    t.push_back(string_key("train.recompute", &C::train, &TrainConfig::recompute, {"none", "selective", "full"}));
    t.push_back(bool_key("train.deterministic", &C::train, &TrainConfig::deterministic));
    t.push_back(bool_key("train.backward_epilogues", &C::train, &TrainConfig::backward_epilogues));
    t.push_back(bool_key("train.fused_attention_forward", &C::train, &TrainConfig::fused_attention_forward));
    t.push_back(bool_key("train.fused_attention_backward", &C::train, &TrainConfig::fused_attention_backward));
    t.push_back(bool_key("train.overlap_optimizer", &C::train, &TrainConfig::overlap_optimizer));
    t.push_back(string_key("train.activations", &C::train, &TrainConfig::activations, {"fp32", "bf16"}));
    t.push_back(string_key("train.residual", &C::train, &TrainConfig::residual, {"fp32", "bf16"}));
    t.push_back(string_key("train.attention", &C::train, &TrainConfig::attention, {"unfused", "flash"}));
    t.push_back(number_key("train.epochs", &C::train, &TrainConfig::epochs, 1, 1e6));
    t.push_back(number_key("train.eval_every", &C::train, &TrainConfig::eval_every, 0, kBig));
    t.push_back(number_key("train.early_stop", &C::train, &TrainConfig::early_stop, 0, 1e6));
    // parallel
    t.push_back(number_key("parallel.tp", &C::parallel, &ParallelConfig::tp, 1, 4096));
    t.push_back(number_key("parallel.dp", &C::parallel, &ParallelConfig::dp, 1, 1 << 20));
    t.push_back(bool_key("parallel.zero1", &C::parallel, &ParallelConfig::zero1));
    t.push_back(number_key("parallel.timeout_s", &C::parallel, &ParallelConfig::timeout_s, 0.1, 1e7));
    t.push_back(number_key("parallel.bucket_mb", &C::parallel, &ParallelConfig::bucket_mb, 1, 1 << 16));
    // data
    t.push_back(list_key("data.shards", &C::data, &DataConfig::shards));
    t.push_back(string_key("data.vocab", &C::data, &DataConfig::vocab));
    t.push_back(string_key("data.dict", &C::data, &DataConfig::dict));
    t.push_back(list_key("data.lexicons", &C::data, &DataConfig::lexicons));
    t.push_back(number_key("data.mask_prob", &C::data, &DataConfig::mask_prob, 0.0, 1.0));
    t.push_back(number_key("data.knowledge_share", &C::data, &DataConfig::knowledge_share, 0.0, 1.0));
    t.push_back(string_key("data.masking", &C::data, &DataConfig::masking, {"kdm", "wwm", "token"}));
    t.push_back(number_key("data.short_seq_prob", &C::data, &DataConfig::short_seq_prob, 0.0, 1.0));
    t.push_back(number_key("data.max_ngram", &C::data, &DataConfig::max_ngram, 1, 16));
    t.push_back(bool_key("data.one_sentence_docs", &C::data, &DataConfig::one_sentence_docs));
    t.push_back(number_key("data.loader_threads", &C::data, &DataConfig::loader_threads, 0, 256));
    t.push_back(bool_key("data.lowercase", &C::data, &DataConfig::lowercase));
    t.push_back(string_key("data.train", &C::data, &DataConfig::train));
    t.push_back(string_key("data.dev", &C::data, &DataConfig::dev));
    t.push_back(string_key("data.test", &C::data, &DataConfig::test));
    t.push_back(number_key("data.num_classes", &C::data, &DataConfig::num_classes, 2, 1 << 16));
    t.push_back(number_key("data.max_len", &C::data, &DataConfig::max_len, 8, 1 << 16));
    t.push_back(bool_key("data.skip_bad_lines", &C::data, &DataConfig::skip_bad_lines));
    t.push_back(list_key("data.labels", &C::data, &DataConfig::labels));
    {
      auto field = [&](const std::string& name, std::string DataFieldsConfig::*m) {
        KeyDef k;
        k.name = "data.fields." + name;
        k.set = [m](Config& c, const YAML::Node& n, const std::string& where) {
          c.data.fields.*m = read_scalar<std::string>(n, where, "a string");
        };
        k.get = [m](const Config& c) { return c.data.fields.*m; };
        t.push_back(k);
      };
      field("a", &DataFieldsConfig::a);
      field("b", &DataFieldsConfig::b);
      field("label", &DataFieldsConfig::label);
      field("id", &DataFieldsConfig::id);
    }
    // checkpoint
    t.push_back(string_key("checkpoint.dir", &C::checkpoint, &CheckpointConfig::dir));
    t.push_back(number_key("checkpoint.every", &C::checkpoint, &CheckpointConfig::every, 0, kBig));
    t.push_back(number_key("checkpoint.keep", &C::checkpoint, &CheckpointConfig::keep, 1, 1e6));
    t.push_back(string_key("checkpoint.init", &C::checkpoint, &CheckpointConfig::init));
    // log
    t.push_back(string_key("log.metrics", &C::log, &LogConfig::metrics));
    t.push_back(number_key("log.every", &C::log, &LogConfig::every, 1, kBig));
    // loss
    t.push_back(string_key("loss.type", &C::loss, &LossConfig::type, {"ce", "label_smoothing", "pcl", "pcl_reference"}));
    t.push_back(number_key("loss.eps", &C::loss, &LossConfig::eps, 0.0, 1.0));
    t.push_back(number_key("loss.alpha", &C::loss, &LossConfig::alpha, 0.0, 10.0));
    t.push_back(number_key("loss.lam_plus", &C::loss, &LossConfig::lam_plus, 0.0, 1e3));
    t.push_back(number_key("loss.lam_minus", &C::loss, &LossConfig::lam_minus, 0.0, 1e3));
    t.push_back(list_key("loss.propensities", &C::loss, &LossConfig::propensities));
    std::sort(t.begin(), t.end(), [](const KeyDef& a, const KeyDef& b) { return a.name < b.name; });
    return t;
  }();
  return table;
}

const KeyDef* find_key(const std::string& name) {
  for (const auto& k : key_table())
    if (k.name == name) return &k;
  return nullptr;
}

bool is_section(const std::string& name) {
  for (const auto& k : key_table())
    if (k.name.compare(0, name.size() + 1, name + ".") == 0) return true;
  return false;
}

[[noreturn]] void unknown_key(const std::string& source, const std::string& key) {
  // Suggest the known key that shares the longest prefix, to catch typos.
  std::string best;
  size_t best_len = 0;
  for (const auto& k : key_table()) {
    size_t n = 0;
    while (n < k.name.size() && n < key.size() && k.name[n] == key[n]) ++n;
    if (n > best_len) best_len = n, best = k.name;
  }
  std::string msg = where_of(source, key) + " is not a known configuration key";
  if (best_len >= 3) msg += " (did you mean '" + best + "'?)";
  throw Error(msg);
}

void apply_node(Config& c, const std::string& source, const std::string& prefix, const YAML::Node& node) {
  if (prefix.empty() && !node.IsMap()) throw Error(source + ": the top level must be a map of sections");
  for (auto it = node.begin(); it != node.end(); ++it) {
    const std::string name = prefix.empty() ? it->first.as<std::string>() : prefix + "." + it->first.as<std::string>();
    const KeyDef* k = find_key(name);
    if (k) {
      k->set(c, it->second, where_of(source, name));
    } else if (it->second.IsMap()) {
      apply_node(c, source, name, it->second);
    } else if (is_section(name)) {
      throw Error(where_of(source, name) + " is a section: expected a map of its keys");
    } else {
      unknown_key(source, name);
    }
  }
}

}  // namespace

Config load_config(const std::string& path) {
  Config c;
  c.source = path;
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    throw Error(path + ": cannot open config file");
  } catch (const YAML::Exception& e) {
    throw Error(path + ":" + std::to_string(e.mark.line + 1) + ": invalid YAML: " + e.msg);
  }
  if (root.IsNull()) return c;
  apply_node(c, path, "", root);
  return c;
}

void apply_overrides(Config& c, const std::vector<std::string>& overrides) {
  for (const auto& o : overrides) {
    auto eq = o.find('=');
    if (eq == std::string::npos || eq == 0) throw Error("override '" + o + "': expected key.sub=value");
    const std::string key = o.substr(0, eq);
    const KeyDef* k = find_key(key);
    if (!k) unknown_key("command line", key);
    YAML::Node value;
    try {
      value = YAML::Load(o.substr(eq + 1));
    } catch (const YAML::Exception& e) {
      throw Error("command line: key '" + key + "': cannot parse value '" + o.substr(eq + 1) + "'");
    }
    k->set(c, value, where_of("command line", key));
  }
}

Config load_config(const std::string& path, const std::vector<std::string>& overrides) {
  Config c;
  if (!path.empty()) c = load_config(path);
  apply_overrides(c, overrides);
  c.validate();
  return c;
}

void Config::validate() const {
  auto fail = [&](const std::string& msg) { throw Error(source + ": " + msg); };
  if (model.hidden % model.heads != 0)
    fail("model.heads (" + std::to_string(model.heads) + ") must divide model.hidden (" + std::to_string(model.hidden) + ")");
  if (train.seq_len > model.max_positions)
    fail("train.seq_len (" + std::to_string(train.seq_len) + ") exceeds model.max_positions (" +
         std::to_string(model.max_positions) + ")");
  if (train.min_lr > train.lr) fail("train.min_lr must not exceed train.lr");
  const int tp = parallel.tp;
  if (model.heads % tp != 0)
    fail("parallel.tp (" + std::to_string(tp) + ") must divide model.heads (" + std::to_string(model.heads) + ")");
  if (model.ffn % tp != 0)
    fail("parallel.tp (" + std::to_string(tp) + ") must divide model.ffn (" + std::to_string(model.ffn) + ")");
  if (!loss.propensities.empty() && static_cast<int>(loss.propensities.size()) != data.num_classes)
    fail("loss.propensities has " + std::to_string(loss.propensities.size()) + " entries but data.num_classes is " +
         std::to_string(data.num_classes));
  if (!data.labels.empty() && static_cast<int>(data.labels.size()) != data.num_classes)
    fail("data.labels has " + std::to_string(data.labels.size()) + " names but data.num_classes is " +
         std::to_string(data.num_classes));
  for (double p : loss.propensities)
    if (!(p > 0.0 && p <= 1.0)) fail("loss.propensities entries must be in (0, 1]");
}

std::string dump_config(const Config& c) {
  std::ostringstream os;
  for (const auto& k : key_table()) os << k.name << ": " << k.get(c) << "\n";
  return os.str();
}

std::vector<std::string> config_keys() {
  std::vector<std::string> names;
  for (const auto& k : key_table()) names.push_back(k.name);
  return names;
}

}  // namespace erlangshen
