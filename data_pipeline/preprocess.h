// `erlangshen preprocess`: streams raw-text inputs through the text pipeline on worker threads and writes HDF5
// shards in input order (output identical for any thread count). Memory is bounded by the number of
// document batches in flight.
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "data_pipeline/text_pipeline.h"

namespace erlangshen::data {

struct PreprocessOptions {
  std::vector<std::string> inputs;
  std::string out_dir;
  int threads = 0;                            // 0: hardware concurrency
  int64_t shard_tokens = int64_t{1} << 24;    // target tokens per shard
  int gzip_level = 0;                         // 0: uncompressed chunks
  size_t max_line_bytes = size_t{1} << 20;
  bool progress = true;                       // progress bar on stderr
  int max_warnings = 10;                      // per kind; the rest are only counted
};

struct PreprocessReport {
  TextStats stats;
  std::vector<std::string> shards;
  std::vector<std::string> warnings;
  int64_t input_bytes = 0;
  double wall_seconds = 0, cpu_seconds = 0;
  int threads = 1;
};

PreprocessReport run_preprocess(const TextPipeline& pipeline, const PreprocessOptions& options);
// Human-readable summary (documents, sentences, tokens, UNK rate, words per sentence, span coverage, speed).
std::string format_summary(const PreprocessReport& report);
// The same as JSON (also written to OUT/preprocess_summary.json).
std::string summary_json(const PreprocessReport& report);

}  // namespace erlangshen::data
