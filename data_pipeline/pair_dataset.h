// Sentence-pair classification data (QBQTC and other matching sets): a JSON-lines reader with configurable
// field names, `[CLS] a [SEP] b [SEP]` encoding with token types, batches padded to the batch's longest
// sequence, a deterministic shuffle, and the helpers of the QBQTC split recipe (remove pairs that occur in
// another file, hold out a share of the remaining pairs).
//
// Labels: with no label names configured, class k is the integer k given as a JSON number (2) or string ("2");
// with names (data.labels), class k is names[k], matched against a string or a number's decimal form.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "data_pipeline/tokenizer.h"

namespace erlangshen::data {

struct PairFields {
  std::string a = "query";
  std::string b = "title";
  std::string label = "label";
  std::string id = "id";
};

struct PairReaderOptions {
  PairFields fields;
  int num_classes = 3;
  std::vector<std::string> label_names;  // (K) or empty: integers 0..K-1
  bool labels_required = true;           // false for unlabeled test files (a label is still read if present)
  bool skip_bad_lines = false;           // count and skip malformed lines instead of failing
};

struct PairExample {
  nlohmann::json id;   // as in the file (number or string); the 0-based record index when the field is absent
  std::string a, b;
  int32_t label = -1;  // class index, -1 when unlabeled
  int64_t line = 0;    // 1-based line in its file
};

struct PairFile {
  std::string path;
  std::vector<PairExample> examples;
  int64_t lines = 0;                  // non-blank lines read
  int64_t skipped = 0;                // malformed lines skipped (skip_bad_lines)
  std::vector<std::string> problems;  // messages of the first skipped lines
  std::vector<int64_t> label_counts;  // (K) labeled examples per class
};

// Reads a JSON-lines file. A malformed line (invalid JSON, not an object, missing or non-string text field,
// missing or unknown label) throws Error "PATH:LINE: what", or is skipped and counted with skip_bad_lines.
// Blank lines are ignored.
PairFile read_pair_file(const std::string& path, const PairReaderOptions& options);

// Class index of a label value, or -1 with `error` set.
int32_t parse_label(const nlohmann::json& value, const PairReaderOptions& options, std::string* error);
// The label as the submission file writes it: names[k], or the decimal k.
std::string label_to_string(int32_t k, const std::vector<std::string>& label_names);

struct EncodedPair {
  std::vector<int32_t> ids;    // (L) [CLS] a [SEP] b [SEP], L <= max_len
  std::vector<int32_t> types;  // (L) 0 on [CLS] a [SEP], 1 on b [SEP]
  int32_t label = -1;
};

// Encodes every example; the longer side is truncated from its end until the pair fits max_len.
std::vector<EncodedPair> encode_pairs(const std::vector<PairExample>& examples, const BertTokenizer& tokenizer,
                                      int max_len);

// One micro-batch, padded to its longest row.
struct PairBatch {
  int batch = 0;    // B
  int seq_len = 0;  // T = longest row of this batch
  std::vector<int32_t> input_ids;       // (B, T) [PAD] after each row's end
  std::vector<int32_t> token_types;     // (B, T) 0 on padding
  std::vector<uint8_t> attention_mask;  // (B, T) 1 = real token
  std::vector<int32_t> labels;          // (B) -1 when unlabeled
  std::vector<int64_t> indices;         // (B) example index in the dataset
};

PairBatch make_pair_batch(const std::vector<EncodedPair>& data, const int64_t* indices, int count, int32_t pad_id);

// A permutation of [0, n) that depends only on (seed, epoch): Fisher-Yates driven by Philox (purpose Shuffle).
std::vector<int64_t> shuffled_order(int64_t n, uint64_t seed, int64_t epoch);

// ---- the QBQTC split recipe ----

// Key of a (query, title) pair.
std::string pair_key(const PairExample& e);
// `examples` without those whose pair occurs in `exclude`; `removed` (optional) counts them.
std::vector<PairExample> remove_pairs(const std::vector<PairExample>& examples, const std::vector<PairExample>& exclude,
                                      int64_t* removed);
// Splits by distinct pair (duplicates stay on one side): ceil(fraction x distinct pairs), drawn by `seed`, go to
// `heldout`, the rest to `train`; both keep the input order.
void split_holdout(const std::vector<PairExample>& examples, double fraction, uint64_t seed,
                   std::vector<PairExample>& train, std::vector<PairExample>& heldout);
// Writes JSON lines {"id", a, b, label} with the given field names (label as label_to_string; omitted when -1).
void write_pair_file(const std::string& path, const std::vector<PairExample>& examples, const PairFields& fields,
                     const std::vector<std::string>& label_names);

}  // namespace erlangshen::data
