#include "data_pipeline/pair_dataset.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <unordered_map>
#include <unordered_set>

#include "runtime/check.h"
#include "runtime/philox.h"

namespace erlangshen::data {

namespace {

bool is_blank(const std::string& s) {
  for (char c : s)
    if (c != ' ' && c != '\t' && c != '\r' && c != '\n') return false;
  return true;
}

std::string describe_json_type(const nlohmann::json& v) {
  if (v.is_null()) return "null";
  if (v.is_string()) return "'" + v.get<std::string>() + "'";
  return v.dump();
}

// Parses one line into `out`; returns an empty string on success, else what is wrong.
std::string parse_line(const std::string& text, const PairReaderOptions& o, PairExample& out) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    std::string what = e.what();
    const auto colon = what.find("syntax error");
    return "invalid JSON (" + (colon == std::string::npos ? what : what.substr(colon)) + ")";
  }
  if (!j.is_object()) return "expected a JSON object, got " + std::string(j.type_name());
  for (const std::string* field : {&o.fields.a, &o.fields.b}) {
    auto it = j.find(*field);
    if (it == j.end()) return "missing field '" + *field + "'";
    if (!it->is_string()) return "field '" + *field + "' must be a string, got " + it->dump();
  }
  out.a = j[o.fields.a].get<std::string>();
  out.b = j[o.fields.b].get<std::string>();
  auto id = j.find(o.fields.id);
  out.id = id == j.end() ? nlohmann::json() : *id;
  auto label = j.find(o.fields.label);
  if (label == j.end() || label->is_null()) {
    if (o.labels_required) return "missing label field '" + o.fields.label + "'";
    out.label = -1;
    return {};
  }
  std::string error;
  out.label = parse_label(*label, o, &error);
  return out.label < 0 ? error : std::string();
}

}  // namespace

int32_t parse_label(const nlohmann::json& v, const PairReaderOptions& o, std::string* error) {
  const int K = o.num_classes;
  std::string text;
  if (v.is_string()) {
    text = v.get<std::string>();
  } else if (v.is_number_integer() || v.is_number_unsigned()) {
    text = std::to_string(v.get<int64_t>());
  } else if (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>()) {
    text = std::to_string(static_cast<int64_t>(v.get<double>()));
  } else {
    if (error) *error = "label " + describe_json_type(v) + " is not a class label";
    return -1;
  }
  if (!o.label_names.empty()) {
    for (size_t k = 0; k < o.label_names.size(); ++k)
      if (o.label_names[k] == text) return static_cast<int32_t>(k);
    if (error) {
      std::string all;
      for (auto& n : o.label_names) all += (all.empty() ? "" : ", ") + n;
      *error = "unknown label '" + text + "' (data.labels: " + all + ")";
    }
    return -1;
  }
  // Integer class 0..K-1, no sign, no spaces, no leading zeros beyond "0".
  bool digits = !text.empty() && text.size() <= 9 && (text.size() == 1 || text[0] != '0');
  for (char c : text) digits = digits && c >= '0' && c <= '9';
  const int k = digits ? std::stoi(text) : -1;
  if (k < 0 || k >= K) {
    if (error) *error = "unknown label '" + text + "' (expected an integer class 0.." + std::to_string(K - 1) + ")";
    return -1;
  }
  return k;
}

std::string label_to_string(int32_t k, const std::vector<std::string>& names) {
  return k >= 0 && k < static_cast<int32_t>(names.size()) ? names[k] : std::to_string(k);
}

PairFile read_pair_file(const std::string& path, const PairReaderOptions& o) {
  if (!o.label_names.empty() && static_cast<int>(o.label_names.size()) != o.num_classes)
    throw Error("data.labels has " + std::to_string(o.label_names.size()) + " names but data.num_classes is " +
                std::to_string(o.num_classes));
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open sentence-pair file");
  PairFile f;
  f.path = path;
  f.label_counts.assign(o.num_classes, 0);
  std::string text;
  int64_t line = 0;
  while (std::getline(in, text)) {
    ++line;
    if (is_blank(text)) continue;
    ++f.lines;
    PairExample e;
    e.line = line;
    const std::string problem = parse_line(text, o, e);
    if (!problem.empty()) {
      const std::string msg = path + ":" + std::to_string(line) + ": " + problem;
      if (!o.skip_bad_lines) throw Error(msg + " (set data.skip_bad_lines=true to skip such lines)");
      ++f.skipped;
      if (f.problems.size() < 5) f.problems.push_back(msg);
      continue;
    }
    if (e.id.is_null()) e.id = static_cast<int64_t>(f.examples.size());
    if (e.label >= 0) ++f.label_counts[e.label];
    f.examples.push_back(std::move(e));
  }
  if (in.bad()) throw Error(path + ": read error after line " + std::to_string(line));
  return f;
}

std::vector<EncodedPair> encode_pairs(const std::vector<PairExample>& examples, const BertTokenizer& tokenizer,
                                      int max_len) {
  ERL_CHECK(max_len >= 3, "data.max_len must leave room for [CLS] a [SEP] b [SEP], got " << max_len);
  std::vector<EncodedPair> out(examples.size());
  for (size_t i = 0; i < examples.size(); ++i) {
    PairEncoding p = tokenizer.encode_pair(examples[i].a, examples[i].b, max_len);
    out[i].ids = std::move(p.ids);
    out[i].types = std::move(p.token_types);
    out[i].label = examples[i].label;
  }
  return out;
}

PairBatch make_pair_batch(const std::vector<EncodedPair>& data, const int64_t* indices, int count, int32_t pad_id) {
  PairBatch b;
  b.batch = count;
  for (int i = 0; i < count; ++i) b.seq_len = std::max(b.seq_len, static_cast<int>(data.at(indices[i]).ids.size()));
  const size_t T = static_cast<size_t>(b.seq_len);
  b.input_ids.assign(count * T, pad_id);
  b.token_types.assign(count * T, 0);
  b.attention_mask.assign(count * T, 0);
  b.labels.resize(count);
  b.indices.assign(indices, indices + count);
  for (int i = 0; i < count; ++i) {
    const EncodedPair& e = data[indices[i]];
    std::copy(e.ids.begin(), e.ids.end(), b.input_ids.begin() + i * T);
    std::copy(e.types.begin(), e.types.end(), b.token_types.begin() + i * T);
    std::fill_n(b.attention_mask.begin() + i * T, e.ids.size(), uint8_t{1});
    b.labels[i] = e.label;
  }
  return b;
}

// Fisher-Yates from the end: swap element i with j = r_i mod (i + 1), r_i = 64 Philox bits at counter i.
std::vector<int64_t> shuffled_order(int64_t n, uint64_t seed, int64_t epoch) {
  std::vector<int64_t> order(n);
  for (int64_t i = 0; i < n; ++i) order[i] = i;
  const PhiloxKey key = derive_key(seed, RngPurpose::Shuffle, static_cast<uint64_t>(epoch), 0, 0x50414952u /*PAIR*/);
  for (int64_t i = n - 1; i > 0; --i) {
    const Philox4 r = philox_block(key, static_cast<uint32_t>(i), static_cast<uint32_t>(i >> 32), 0, 0);
    const uint64_t bits = (static_cast<uint64_t>(r.v[0]) << 32) | r.v[1];
    std::swap(order[i], order[bits % static_cast<uint64_t>(i + 1)]);
  }
  return order;
}

std::string pair_key(const PairExample& e) { return e.a + '\x1f' + e.b; }

std::vector<PairExample> remove_pairs(const std::vector<PairExample>& examples, const std::vector<PairExample>& exclude,
                                      int64_t* removed) {
  std::unordered_set<std::string> banned;
  for (const auto& e : exclude) banned.insert(pair_key(e));
  std::vector<PairExample> kept;
  int64_t n = 0;
  for (const auto& e : examples) {
    if (banned.count(pair_key(e))) ++n;
    else kept.push_back(e);
  }
  if (removed) *removed = n;
  return kept;
}

void split_holdout(const std::vector<PairExample>& examples, double fraction, uint64_t seed,
                   std::vector<PairExample>& train, std::vector<PairExample>& heldout) {
  ERL_CHECK(fraction >= 0.0 && fraction < 1.0, "holdout fraction must be in [0, 1), got " << fraction);
  std::unordered_map<std::string, int64_t> group;  // pair -> index among distinct pairs (first occurrence order)
  std::vector<int64_t> group_of(examples.size());
  for (size_t i = 0; i < examples.size(); ++i)
    group_of[i] = group.emplace(pair_key(examples[i]), static_cast<int64_t>(group.size())).first->second;
  const int64_t groups = static_cast<int64_t>(group.size());
  const int64_t held = static_cast<int64_t>(std::ceil(fraction * static_cast<double>(groups)));
  const std::vector<int64_t> order = shuffled_order(groups, seed, 0);
  std::vector<uint8_t> is_held(groups, 0);
  for (int64_t i = 0; i < held; ++i) is_held[order[i]] = 1;
  train.clear();
  heldout.clear();
  for (size_t i = 0; i < examples.size(); ++i) (is_held[group_of[i]] ? heldout : train).push_back(examples[i]);
}

void write_pair_file(const std::string& path, const std::vector<PairExample>& examples, const PairFields& fields,
                     const std::vector<std::string>& label_names) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw Error(path + ": cannot write");
  for (const auto& e : examples) {
    nlohmann::ordered_json j;
    j[fields.id] = e.id;
    j[fields.a] = e.a;
    j[fields.b] = e.b;
    if (e.label >= 0) j[fields.label] = label_to_string(e.label, label_names);
    out << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  }
  if (!out) throw Error(path + ": write failed");
}

}  // namespace erlangshen::data
