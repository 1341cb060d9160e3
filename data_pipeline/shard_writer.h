// Writes TokenizedDocs into HDF5 corpus shards (shard_format.h): chunked, extendable datasets, optional gzip,
// a new file once the current one holds `target_tokens` tokens (documents are never split). Each file is
// written under a temporary name and renamed when complete.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data_pipeline/text_processor.h"

namespace erlangshen::data {

struct ShardMeta {
  std::string vocab_sha256;
  int64_t vocab_size = 0;
  bool lowercase = true;
  std::string segmenter;       // e.g. "jieba-dag-nohmm dict_sha256=..."
  std::string lexicon_sha256;
  std::string source;          // input file names, one per line
};

struct ShardWriterOptions {
  std::string dir;
  std::string prefix = "shard";
  int64_t target_tokens = int64_t{1} << 24;  // tokens per shard (16M = 64 MB of ids)
  int gzip_level = 0;                        // 0: uncompressed chunks (fastest random access)
  int64_t chunk_elements = int64_t{1} << 16;
};

class ShardWriter {
 public:
  ShardWriter(ShardWriterOptions options, ShardMeta meta);
  ~ShardWriter();
  void add(const TokenizedDoc& doc);
  // Flushes and closes the last shard; returns the paths written, in order.
  std::vector<std::string> finish();

 private:
  class File;
  void open_next();
  ShardWriterOptions opt_;
  ShardMeta meta_;
  std::unique_ptr<File> file_;
  std::vector<std::string> paths_;
};

}  // namespace erlangshen::data
