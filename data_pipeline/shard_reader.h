// Reads one HDF5 corpus shard (shard_format.h). Opening validates the attributes (format, version, vocabulary
// hash) and the index datasets (sentence/document offsets: monotone, in range); token and span data are read
// on demand with hyperslab reads, so memory holds only the index. Errors name the file and the dataset.
// Reads are serialised per reader (the HDF5 library is not re-entrant).
#pragma once
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "data_pipeline/hdf5_util.h"

namespace erlangshen::data {

class ShardReader {
 public:
  // `expected_vocab_sha256` empty: no vocabulary check.
  ShardReader(const std::string& path, const std::string& expected_vocab_sha256);

  const std::string& path() const { return path_; }
  int64_t num_tokens() const { return num_tokens_; }
  int64_t num_sentences() const { return static_cast<int64_t>(sentence_offsets_.size()) - 1; }
  int64_t num_docs() const { return static_cast<int64_t>(doc_offsets_.size()) - 1; }
  int64_t num_spans() const { return num_spans_; }
  const std::vector<int64_t>& sentence_offsets() const { return sentence_offsets_; }  // (S+1) token offsets
  const std::vector<int64_t>& doc_offsets() const { return doc_offsets_; }            // (D+1) sentence offsets
  const std::vector<int64_t>& doc_span_offsets() const { return doc_span_offsets_; }  // (D+1) span offsets

  // tokens[begin, end) and word_start[begin, end) into the given buffers (each end - begin long).
  void read_tokens(int64_t begin, int64_t end, int32_t* tokens, uint8_t* word_start) const;
  // spans rows [begin, end) into `out` ((end - begin) * 3 values).
  void read_spans(int64_t begin, int64_t end, int32_t* out) const;

  // (K) first column of `spans` (token begin of each span), read on first use; sorted within each document.
  const std::vector<int32_t>& span_begins() const;

  const std::string& vocab_sha256() const { return vocab_sha256_; }
  int64_t vocab_size() const { return vocab_size_; }
  bool lowercase() const { return lowercase_; }

 private:
  template <typename T>
  void read_rows(hid_t ds, const char* name, int64_t begin, int64_t end, int cols, T* out) const;
  std::vector<int64_t> read_index(const char* name);
  std::string path_;
  h5::Handle file_, tokens_, word_start_, spans_;
  std::vector<int64_t> sentence_offsets_, doc_offsets_, doc_span_offsets_;
  int64_t num_tokens_ = 0, num_spans_ = 0, vocab_size_ = 0;
  bool lowercase_ = true;
  std::string vocab_sha256_;
  mutable std::mutex mu_;
  mutable std::once_flag span_begins_once_;
  mutable std::vector<int32_t> span_begins_;
};

// Expands shard arguments: files as given, directories to their *.h5 files (sorted by name).
std::vector<std::string> expand_shard_paths(const std::vector<std::string>& specs);

}  // namespace erlangshen::data
