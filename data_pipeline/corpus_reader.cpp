#include "data_pipeline/corpus_reader.h"

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "runtime/check.h"

namespace erlangshen::data {

CorpusReader::CorpusReader(std::vector<std::string> files, CorpusReaderOptions options)
    : files_(std::move(files)), opt_(options), buf_(size_t{1} << 20) {
  if (files_.empty()) throw Error("no input files");
  for (const auto& f : files_) {
    std::error_code ec;
    auto size = std::filesystem::file_size(f, ec);
    if (ec) throw Error("cannot read input " + f + ": " + ec.message());
    total_bytes_ += static_cast<int64_t>(size);
  }
}

CorpusReader::~CorpusReader() {
  if (f_) std::fclose(f_);
}

bool CorpusReader::open_next_file() {
  if (f_) std::fclose(f_);
  f_ = nullptr;
  if (++file_index_ >= static_cast<int>(files_.size())) return false;
  f_ = std::fopen(files_[static_cast<size_t>(file_index_)].c_str(), "rb");
  if (!f_) throw Error("cannot open input " + files_[static_cast<size_t>(file_index_)] + ": " + std::strerror(errno));
  buf_pos_ = buf_len_ = 0;
  line_no_ = 0;
  return true;
}

bool CorpusReader::read_line(std::string& line) {
  line.clear();
  bool any = false, too_long = false;
  last_too_long_ = false;
  for (;;) {
    if (buf_pos_ == buf_len_) {
      buf_len_ = std::fread(buf_.data(), 1, buf_.size(), f_);
      buf_pos_ = 0;
      if (buf_len_ == 0) {
        if (std::ferror(f_)) throw Error("read error in " + files_[static_cast<size_t>(file_index_)]);
        break;
      }
    }
    any = true;
    const char* start = buf_.data() + buf_pos_;
    const void* nl = std::memchr(start, '\n', buf_len_ - buf_pos_);
    size_t n = nl ? static_cast<size_t>(static_cast<const char*>(nl) - start) : buf_len_ - buf_pos_;
    bytes_read_ += static_cast<int64_t>(n + (nl ? 1 : 0));
    if (!too_long) {
      if (line.size() + n > opt_.max_line_bytes) {
        too_long = true;
        line.clear();
      } else {
        line.append(start, n);
      }
    }
    buf_pos_ += n + (nl ? 1 : 0);
    if (nl) break;
  }
  if (!any) return false;
  ++line_no_;
  if (too_long) {
    ++long_lines_;
    if (long_line_locations_.size() < 10)
      long_line_locations_.push_back(files_[static_cast<size_t>(file_index_)] + ":" + std::to_string(line_no_));
    last_too_long_ = true;  // dropped; does not end the document
    return true;
  }
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return true;
}

bool CorpusReader::next(RawDocument& doc) {
  doc.lines.clear();
  doc.line_numbers.clear();
  doc.bytes = 0;
  if (file_index_ < 0 && !open_next_file()) return false;
  std::string line;
  while (f_) {
    int64_t before = bytes_read_;
    if (!read_line(line)) {  // end of this file ends the document too
      if (!doc.lines.empty()) return true;
      if (!open_next_file()) return false;
      continue;
    }
    doc.bytes += bytes_read_ - before;
    if (last_too_long_) continue;
    if (line.find_first_not_of(" \t\r\f\v") == std::string::npos) {  // blank: ends the document
      if (!doc.lines.empty()) return true;
      continue;
    }
    if (doc.lines.empty()) doc.file_index = file_index_;
    doc.line_numbers.push_back(line_no_);
    doc.lines.push_back(std::move(line));
    line = std::string();
    if (doc.lines.size() >= opt_.max_doc_lines) return true;
  }
  return !doc.lines.empty();
}

}  // namespace erlangshen::data
