// Streams documents from text files where a document is a block of non-blank lines and documents are separated
// by blank lines (../shared/data/corpus format). Reads in fixed-size blocks, so memory stays bounded whatever
// the file size; lines longer than `max_line_bytes` are skipped (counted, reported with file and line).
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace erlangshen::data {

struct RawDocument {
  std::vector<std::string> lines;  // UTF-8 as read (not yet validated)
  int file_index = 0;              // index into the input list
  std::vector<int64_t> line_numbers;  // 1-based line number of each line
  int64_t bytes = 0;               // bytes consumed, including separators
};

struct CorpusReaderOptions {
  size_t max_line_bytes = size_t{1} << 20;  // longer lines are skipped
  size_t max_doc_lines = 100000;            // longer documents are cut into several
};

class CorpusReader {
 public:
  CorpusReader(std::vector<std::string> files, CorpusReaderOptions options = {});
  ~CorpusReader();
  // Next document; false at the end of the last file. Throws Error naming a file that cannot be read.
  bool next(RawDocument& doc);

  int64_t bytes_read() const { return bytes_read_; }
  int64_t total_bytes() const { return total_bytes_; }
  int64_t long_lines() const { return long_lines_; }
  // Up to a few "file:line" locations of skipped long lines (for the report).
  const std::vector<std::string>& long_line_locations() const { return long_line_locations_; }
  const std::vector<std::string>& files() const { return files_; }

 private:
  bool read_line(std::string& line);  // false at end of the current file
  bool last_too_long_ = false;        // the line just read was over the limit (and is empty)
  bool open_next_file();
  std::vector<std::string> files_;
  CorpusReaderOptions opt_;
  int file_index_ = -1;
  FILE* f_ = nullptr;
  std::vector<char> buf_;
  size_t buf_pos_ = 0, buf_len_ = 0;
  int64_t line_no_ = 0, bytes_read_ = 0, total_bytes_ = 0, long_lines_ = 0;
  std::vector<std::string> long_line_locations_;
};

}  // namespace erlangshen::data
