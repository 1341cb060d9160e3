#include "data_pipeline/shard_reader.h"

#include <algorithm>
#include <filesystem>

#include "data_pipeline/shard_format.h"
#include "runtime/check.h"

namespace erlangshen::data {

namespace {

h5::Handle open_dataset(hid_t file, const std::string& path, const char* name, int rank, int64_t* rows) {
  h5::Handle ds;
  H5E_BEGIN_TRY { ds = h5::Handle(H5Dopen2(file, name, H5P_DEFAULT), h5::Handle::Dataset); }
  H5E_END_TRY;
  if (!ds.valid()) throw Error(path + ": dataset '" + name + "' is missing or unreadable (corrupt shard?)");
  h5::Handle space(H5Dget_space(ds.get()), h5::Handle::Dataspace);
  hsize_t dims[2] = {0, 0};
  if (H5Sget_simple_extent_ndims(space.get()) != rank)
    throw Error(path + ": dataset '" + name + "' should have rank " + std::to_string(rank));
  H5Sget_simple_extent_dims(space.get(), dims, nullptr);
  if (rank == 2 && dims[1] != 3) throw Error(path + ": dataset '" + name + "' should have 3 columns");
  *rows = static_cast<int64_t>(dims[0]);
  return ds;
}

}  // namespace

template <typename T>
void ShardReader::read_rows(hid_t ds, const char* name, int64_t begin, int64_t end, int cols, T* out) const {
  if (end <= begin) return;
  std::lock_guard<std::mutex> lock(mu_);
  const int rank = cols == 1 ? 1 : 2;
  herr_t rc = -1;
  H5E_BEGIN_TRY {
    h5::Handle fspace(H5Dget_space(ds), h5::Handle::Dataspace);
    hsize_t start[2] = {static_cast<hsize_t>(begin), 0};
    hsize_t count[2] = {static_cast<hsize_t>(end - begin), static_cast<hsize_t>(cols)};
    if (fspace.valid() && H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, start, nullptr, count, nullptr) >= 0) {
      h5::Handle mspace(H5Screate_simple(rank, count, nullptr), h5::Handle::Dataspace);
      rc = H5Dread(ds, h5::native_type<T>(), mspace.get(), fspace.get(), H5P_DEFAULT, out);
    }
  }
  H5E_END_TRY;
  if (rc < 0)
    throw Error(path_ + ": cannot read dataset '" + name + "' rows [" + std::to_string(begin) + ", " +
                std::to_string(end) + ") (truncated or corrupt shard?)");
}

std::vector<int64_t> ShardReader::read_index(const char* name) {
  int64_t rows = 0;
  h5::Handle ds = open_dataset(file_.get(), path_, name, 1, &rows);
  if (rows < 1) throw Error(path_ + ": dataset '" + std::string(name) + "' is empty");
  std::vector<int64_t> v(static_cast<size_t>(rows));
  read_rows<int64_t>(ds.get(), name, 0, rows, 1, v.data());
  if (v[0] != 0) throw Error(path_ + ": dataset '" + std::string(name) + "' does not start at 0");
  for (size_t i = 1; i < v.size(); ++i)
    if (v[i] < v[i - 1])
      throw Error(path_ + ": dataset '" + std::string(name) + "' decreases at row " + std::to_string(i));
  return v;
}

ShardReader::ShardReader(const std::string& path, const std::string& expected_vocab_sha256) : path_(path) {
  if (!std::filesystem::exists(path)) throw Error("shard " + path + " does not exist");
  H5E_BEGIN_TRY { file_ = h5::Handle(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), h5::Handle::File); }
  H5E_END_TRY;
  if (!file_.valid()) throw Error("cannot open shard " + path + ": not an HDF5 file, or truncated/corrupt");
  const hid_t f = file_.get();
  std::string format = h5::has_attr(f, "format") ? h5::read_string_attr(f, path, "format") : "";
  if (format != shard::kFormat)
    throw Error(path + ": attribute 'format' is '" + format + "', expected '" + shard::kFormat + "'");
  int64_t version = h5::read_int_attr(f, path, "version");
  if (version < 1 || version > shard::kVersion)
    throw Error(path + ": shard format version " + std::to_string(version) + " is not supported (this build reads " +
                std::to_string(shard::kVersion) + ")");
  vocab_sha256_ = h5::read_string_attr(f, path, "vocab_sha256");
  if (!expected_vocab_sha256.empty() && vocab_sha256_ != expected_vocab_sha256)
    throw Error(path + ": shard was written with vocabulary sha256 " + vocab_sha256_ +
                " but this run's vocabulary has sha256 " + expected_vocab_sha256 + "; refusing to mix vocabularies");
  vocab_size_ = h5::read_int_attr(f, path, "vocab_size");
  lowercase_ = h5::read_int_attr(f, path, "lowercase") != 0;

  int64_t ws_rows = 0;
  tokens_ = open_dataset(f, path, shard::kTokens, 1, &num_tokens_);
  word_start_ = open_dataset(f, path, shard::kWordStart, 1, &ws_rows);
  if (ws_rows != num_tokens_)
    throw Error(path + ": dataset 'word_start' has " + std::to_string(ws_rows) + " rows but 'tokens' has " +
                std::to_string(num_tokens_));
  spans_ = open_dataset(f, path, shard::kSpans, 2, &num_spans_);
  sentence_offsets_ = read_index(shard::kSentenceOffsets);
  doc_offsets_ = read_index(shard::kDocOffsets);
  if (sentence_offsets_.back() != num_tokens_)
    throw Error(path + ": dataset 'sentence_offsets' ends at " + std::to_string(sentence_offsets_.back()) +
                " but 'tokens' has " + std::to_string(num_tokens_) + " rows");
  if (doc_offsets_.back() != num_sentences())
    throw Error(path + ": dataset 'doc_offsets' ends at " + std::to_string(doc_offsets_.back()) + " but there are " +
                std::to_string(num_sentences()) + " sentences");
  {
    htri_t has;
    H5E_BEGIN_TRY { has = H5Lexists(f, shard::kDocSpanOffsets, H5P_DEFAULT); }
    H5E_END_TRY;
    if (has > 0) {
      doc_span_offsets_ = read_index(shard::kDocSpanOffsets);
    } else {  // shards from other writers: derive from the span begins (reads the spans' first column once)
      std::vector<int32_t> all(static_cast<size_t>(num_spans_) * 3);
      read_rows<int32_t>(spans_.get(), shard::kSpans, 0, num_spans_, 3, all.data());
      doc_span_offsets_.assign(doc_offsets_.size(), 0);
      int64_t k = 0;
      for (size_t d = 1; d < doc_offsets_.size(); ++d) {
        int64_t doc_end = sentence_offsets_[static_cast<size_t>(doc_offsets_[d])];
        while (k < num_spans_ && all[static_cast<size_t>(k) * 3] < doc_end) ++k;
        doc_span_offsets_[d] = k;
      }
    }
  }
  if (doc_span_offsets_.size() != doc_offsets_.size() || doc_span_offsets_.back() != num_spans_)
    throw Error(path + ": dataset 'doc_span_offsets' does not match 'doc_offsets' / 'spans'");
}

void ShardReader::read_tokens(int64_t begin, int64_t end, int32_t* tokens, uint8_t* word_start) const {
  ERL_CHECK(begin >= 0 && end <= num_tokens_ && begin <= end, path_ << ": token range out of bounds");
  read_rows<int32_t>(tokens_.get(), shard::kTokens, begin, end, 1, tokens);
  read_rows<uint8_t>(word_start_.get(), shard::kWordStart, begin, end, 1, word_start);
}

void ShardReader::read_spans(int64_t begin, int64_t end, int32_t* out) const {
  ERL_CHECK(begin >= 0 && end <= num_spans_ && begin <= end, path_ << ": span range out of bounds");
  read_rows<int32_t>(spans_.get(), shard::kSpans, begin, end, 3, out);
}

const std::vector<int32_t>& ShardReader::span_begins() const {
  std::call_once(span_begins_once_, [this] {
    std::vector<int32_t> begins(static_cast<size_t>(num_spans_));
    constexpr int64_t kRows = 1 << 16;
    std::vector<int32_t> rows;
    for (int64_t k = 0; k < num_spans_; k += kRows) {
      int64_t e = std::min(num_spans_, k + kRows);
      rows.resize(static_cast<size_t>(e - k) * 3);
      read_spans(k, e, rows.data());
      for (int64_t i = k; i < e; ++i) begins[static_cast<size_t>(i)] = rows[static_cast<size_t>(i - k) * 3];
    }
    for (size_t i = 1; i < begins.size(); ++i)
      if (begins[i] < begins[i - 1])
        throw Error(path_ + ": dataset 'spans' is not sorted by token begin at row " + std::to_string(i));
    span_begins_ = std::move(begins);
  });
  return span_begins_;
}

std::vector<std::string> expand_shard_paths(const std::vector<std::string>& specs) {
  std::vector<std::string> out;
  for (const auto& s : specs) {
    std::error_code ec;
    if (std::filesystem::is_directory(s, ec)) {
      std::vector<std::string> files;
      for (const auto& e : std::filesystem::directory_iterator(s))
        if (e.is_regular_file() && e.path().extension() == ".h5") files.push_back(e.path().string());
      std::sort(files.begin(), files.end());
      if (files.empty()) throw Error("shard directory " + s + " has no .h5 files");
      out.insert(out.end(), files.begin(), files.end());
    } else {
      if (!std::filesystem::exists(s, ec)) throw Error("shard " + s + " does not exist");
      out.push_back(s);
    }
  }
  if (out.empty()) throw Error("no shards given (data.shards is empty)");
  return out;
}

}  // namespace erlangshen::data
