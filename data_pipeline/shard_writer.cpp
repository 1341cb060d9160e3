#include "data_pipeline/shard_writer.h"

#include <cstdio>
#include <filesystem>

#include "data_pipeline/hdf5_util.h"
#include "data_pipeline/shard_format.h"
#include "runtime/check.h"

namespace erlangshen::data {

namespace {

// One extendable 1-D (or [n, cols]) dataset with an in-memory append buffer.
template <typename T>
class Appender {
 public:
  Appender(hid_t file, const std::string& path, const char* name, int cols, int64_t chunk, int gzip)
      : path_(path), name_(name), cols_(cols) {
    hsize_t dims[2] = {0, static_cast<hsize_t>(cols)};
    hsize_t maxd[2] = {H5S_UNLIMITED, static_cast<hsize_t>(cols)};
    hsize_t chunks[2] = {static_cast<hsize_t>(std::max<int64_t>(1, chunk / cols)), static_cast<hsize_t>(cols)};
    int rank = cols == 1 ? 1 : 2;
    h5::Handle space(H5Screate_simple(rank, dims, maxd), h5::Handle::Dataspace);
    h5::Handle dcpl(H5Pcreate(H5P_DATASET_CREATE), h5::Handle::Plist);
    H5Pset_chunk(dcpl.get(), rank, chunks);
    H5Pset_obj_track_times(dcpl.get(), false);  // no timestamps: identical input gives identical bytes
    if (gzip > 0) {
      H5Pset_shuffle(dcpl.get());
      H5Pset_deflate(dcpl.get(), static_cast<unsigned>(gzip));
    }
    ds_ = h5::Handle(H5Dcreate2(file, name, h5::native_type<T>(), space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT),
                     h5::Handle::Dataset);
    if (!ds_.valid()) throw Error("cannot create dataset '" + name_ + "' in " + path_);
  }
  void push(T v) {
    buf_.push_back(v);
    if (buf_.size() >= kFlushElements) flush();
  }
  template <typename It>
  void push(It b, It e) {
    buf_.insert(buf_.end(), b, e);
    if (buf_.size() >= kFlushElements) flush();
  }
  int64_t size() const { return written_ + static_cast<int64_t>(buf_.size()) / cols_; }
  // Writes the whole rows buffered so far; a partly pushed row (push() of single elements of a multi-column
  // dataset) stays buffered for the next flush.
  void flush() {
    const hsize_t rows = buf_.size() / static_cast<size_t>(cols_);
    if (rows == 0) return;
    hsize_t new_dims[2] = {static_cast<hsize_t>(written_) + rows, static_cast<hsize_t>(cols_)};
    int rank = cols_ == 1 ? 1 : 2;
    if (H5Dset_extent(ds_.get(), new_dims) < 0) throw Error("cannot extend dataset '" + name_ + "' in " + path_);
    h5::Handle fspace(H5Dget_space(ds_.get()), h5::Handle::Dataspace);
    hsize_t start[2] = {static_cast<hsize_t>(written_), 0};
    hsize_t count[2] = {rows, static_cast<hsize_t>(cols_)};
    H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, start, nullptr, count, nullptr);
    h5::Handle mspace(H5Screate_simple(rank, count, nullptr), h5::Handle::Dataspace);
    if (H5Dwrite(ds_.get(), h5::native_type<T>(), mspace.get(), fspace.get(), H5P_DEFAULT, buf_.data()) < 0)
      throw Error("cannot write dataset '" + name_ + "' in " + path_);
    written_ += static_cast<int64_t>(rows);
    buf_.erase(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(rows * static_cast<size_t>(cols_)));
  }
  void close() {
    flush();
    if (!buf_.empty()) throw Error("dataset '" + name_ + "' in " + path_ + ": a partial row was left unwritten");
    ds_.reset();
  }

 private:
  static constexpr size_t kFlushElements = size_t{1} << 20;
  std::string path_, name_;
  int cols_;
  h5::Handle ds_;
  std::vector<T> buf_;
  int64_t written_ = 0;
};

}  // namespace

class ShardWriter::File {
 public:
  File(const std::string& path, const ShardWriterOptions& o, const ShardMeta& meta)
      : path_(path), tmp_(path + ".tmp") {
    h5::Handle fid;
    H5E_BEGIN_TRY { fid = h5::Handle(H5Fcreate(tmp_.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), h5::Handle::File); }
    H5E_END_TRY;
    if (!fid.valid()) throw Error("cannot create HDF5 shard " + tmp_);
    file_ = std::move(fid);
    const hid_t f = file_.get();
    tokens_ = std::make_unique<Appender<int32_t>>(f, path_, shard::kTokens, 1, o.chunk_elements, o.gzip_level);
    word_start_ = std::make_unique<Appender<uint8_t>>(f, path_, shard::kWordStart, 1, o.chunk_elements, o.gzip_level);
    sent_ = std::make_unique<Appender<int64_t>>(f, path_, shard::kSentenceOffsets, 1, o.chunk_elements / 4, o.gzip_level);
    docs_ = std::make_unique<Appender<int64_t>>(f, path_, shard::kDocOffsets, 1, o.chunk_elements / 16, o.gzip_level);
    spans_ = std::make_unique<Appender<int32_t>>(f, path_, shard::kSpans, 3, o.chunk_elements / 4, o.gzip_level);
    doc_spans_ = std::make_unique<Appender<int64_t>>(f, path_, shard::kDocSpanOffsets, 1, o.chunk_elements / 16,
                                                     o.gzip_level);
    sent_->push(0);
    docs_->push(0);
    doc_spans_->push(0);
    h5::write_string_attr(f, path_, "format", shard::kFormat);
    h5::write_int_attr(f, path_, "version", shard::kVersion);
    h5::write_string_attr(f, path_, "vocab_sha256", meta.vocab_sha256);
    h5::write_int_attr(f, path_, "vocab_size", meta.vocab_size);
    h5::write_int_attr(f, path_, "lowercase", meta.lowercase ? 1 : 0);
    h5::write_string_attr(f, path_, "segmenter", meta.segmenter);
    h5::write_string_attr(f, path_, "lexicon_sha256", meta.lexicon_sha256);
    h5::write_string_attr(f, path_, "source", meta.source);
  }
  ~File() {
    if (file_.valid()) {  // abandoned (error path): drop the partial file
      tokens_.reset(), word_start_.reset(), sent_.reset(), docs_.reset(), spans_.reset(), doc_spans_.reset();
      file_.reset();
      std::remove(tmp_.c_str());
    }
  }
  void add(const TokenizedDoc& d) {
    const int64_t base = tokens_->size();
    tokens_->push(d.tokens.begin(), d.tokens.end());
    word_start_->push(d.word_start.begin(), d.word_start.end());
    for (int64_t e : d.sentence_ends) sent_->push(base + e);
    docs_->push(sent_->size() - 1);
    for (size_t k = 0; k < d.spans.size(); k += 3) {
      spans_->push(static_cast<int32_t>(base + d.spans[k]));
      spans_->push(static_cast<int32_t>(base + d.spans[k + 1]));
      spans_->push(d.spans[k + 2]);
    }
    doc_spans_->push(spans_->size());
    ERL_CHECK(tokens_->size() < (int64_t{1} << 31), "shard " << path_ << " exceeds 2^31 tokens");
  }
  int64_t tokens() const { return tokens_->size(); }
  void close() {
    tokens_->close(), word_start_->close(), sent_->close(), docs_->close(), spans_->close(), doc_spans_->close();
    if (H5Fflush(file_.get(), H5F_SCOPE_GLOBAL) < 0) throw Error("cannot flush " + tmp_);
    file_.reset();
    std::error_code ec;
    std::filesystem::rename(tmp_, path_, ec);
    if (ec) throw Error("cannot rename " + tmp_ + " to " + path_ + ": " + ec.message());
  }

 private:
  std::string path_, tmp_;
  h5::Handle file_;
  std::unique_ptr<Appender<int32_t>> tokens_;
  std::unique_ptr<Appender<uint8_t>> word_start_;
  std::unique_ptr<Appender<int64_t>> sent_, docs_, doc_spans_;
  std::unique_ptr<Appender<int32_t>> spans_;
};

ShardWriter::ShardWriter(ShardWriterOptions options, ShardMeta meta) : opt_(std::move(options)), meta_(std::move(meta)) {
  std::error_code ec;
  std::filesystem::create_directories(opt_.dir, ec);
  if (ec) throw Error("cannot create output directory " + opt_.dir + ": " + ec.message());
}

ShardWriter::~ShardWriter() = default;

void ShardWriter::open_next() {
  char name[64];
  std::snprintf(name, sizeof name, "%s_%05zu.h5", opt_.prefix.c_str(), paths_.size());
  std::string path = (std::filesystem::path(opt_.dir) / name).string();
  file_ = std::make_unique<File>(path, opt_, meta_);
  paths_.push_back(path);
}

void ShardWriter::add(const TokenizedDoc& doc) {
  if (doc.tokens.empty()) return;
  if (file_ && file_->tokens() >= opt_.target_tokens) {
    file_->close();
    file_.reset();
  }
  if (!file_) open_next();
  file_->add(doc);
}

std::vector<std::string> ShardWriter::finish() {
  if (file_) {
    file_->close();
    file_.reset();
  }
  return paths_;
}

}  // namespace erlangshen::data
