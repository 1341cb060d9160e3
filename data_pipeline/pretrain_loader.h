// The streaming pretraining loader (DESIGN §4, §9).
//
// The epoch's sample order is fixed by EpochOrder; the global batch of step k (within the epoch) is samples
// [k*G, (k+1)*G) with G = micro_batch * dp * grad_accum; DP rank r takes [k*G + r*m*a, k*G + (r+1)*m*a)
// (m = micro_batch, a = grad_accum), split into `a` micro-batches in order. An epoch has floor(N / G) steps;
// the remainder is dropped. Each sample is built and masked from Philox keyed by (seed, epoch, sample id), so
// the data of a step does not depend on the DP layout, the thread count or on resuming.
// Background threads build the steps ahead into a bounded queue.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "data_pipeline/batch.h"
#include "data_pipeline/epoch_order.h"
#include "data_pipeline/masker.h"
#include "data_pipeline/sample_builder.h"
#include "data_pipeline/shard_reader.h"
#include "data_pipeline/vocab.h"

namespace erlangshen {

struct Config;

struct LoaderOptions {
  std::vector<std::string> shards;  // files or directories of *.h5
  std::string vocab_path;           // for the hash check, specials and random replacement
  int seq_len = 128;
  int micro_batch = 16;
  int grad_accum = 1;
  int dp_size = 1;
  int dp_rank = 0;
  uint64_t seed = 1234;
  double mask_prob = 0.15, knowledge_share = 0.5, short_seq_prob = 0.1;
  std::string masking = "kdm";  // kdm | wwm | token
  int max_ngram = 3;
  int threads = 1;              // background builder threads (0: build in next_step)
  bool one_sentence_docs = true;  // false: skip documents of a single sentence
  static LoaderOptions from_config(const Config& config, int dp_rank, int dp_size);
};

// Where the loader stands: the next step starts at sample `position` of epoch `epoch`.
struct LoaderCursor {
  int64_t epoch = 0;
  int64_t position = 0;
  int64_t step = 0;               // steps consumed so far (informational)
  int64_t samples_per_epoch = 0;  // checked on restore (the corpus must be the same)
  uint64_t seed = 0;
};
void to_json(nlohmann::json& j, const LoaderCursor& c);
void from_json(const nlohmann::json& j, LoaderCursor& c);

class PretrainLoader {
 public:
  explicit PretrainLoader(const LoaderOptions& options);
  ~PretrainLoader();
  PretrainLoader(const PretrainLoader&) = delete;
  PretrainLoader& operator=(const PretrainLoader&) = delete;

  // The grad_accum micro-batches of the next optimizer step for this DP rank.
  std::vector<PretrainBatch> next_step();
  LoaderCursor cursor() const;
  // Continues from `c` (no replay); throws Error when it belongs to another corpus or seed.
  void restore(const LoaderCursor& c);
  int64_t samples_per_epoch() const { return order_->samples_per_epoch(); }
  int64_t steps_per_epoch() const { return samples_per_epoch() / global_batch_; }

  // Statistics of the corpus as chunked (for logs).
  int64_t skipped_one_sentence_docs() const { return skipped_one_sentence_docs_; }
  // Builds (and masks) the sample at `position` of `epoch` (for tests and tools); `mask` may be null.
  void build(int64_t epoch, int64_t position, data::BuiltSample& sample, data::MaskResult* mask) const;
  const data::Vocab& vocab() const { return *vocab_; }

 private:
  struct Task {
    int64_t epoch, position;
    bool done = false;
    std::vector<PretrainBatch> result;
    std::string error;
  };
  std::vector<PretrainBatch> build_step(int64_t epoch, int64_t position) const;
  std::shared_ptr<const data::ShardReader> reader(int32_t shard) const;
  void start_workers();
  void stop_workers();
  void plan_ahead();  // with mu_ held

  LoaderOptions opt_;
  std::shared_ptr<const data::Vocab> vocab_;
  std::unique_ptr<data::Masker> masker_;
  std::vector<std::string> paths_;
  std::vector<std::vector<data::SampleRef>> samples_;  // per shard
  std::unique_ptr<data::EpochOrder> order_;
  int64_t global_batch_ = 0, skipped_one_sentence_docs_ = 0;

  mutable std::mutex readers_mu_;
  struct OpenShard {
    std::shared_ptr<const data::ShardReader> reader;
    int64_t last_use = 0;
  };
  mutable std::map<int32_t, OpenShard> readers_;  // least recently used closed beyond kMaxOpenShards
  mutable int64_t reader_clock_ = 0;
  static constexpr size_t kMaxOpenShards = 16;

  // prefetch queue
  mutable std::mutex mu_;
  std::condition_variable cv_work_, cv_done_;
  std::map<int64_t, Task> tasks_;  // by task index
  int64_t next_task_ = 0, next_to_build_ = 0, next_to_consume_ = 0;
  int64_t plan_epoch_ = 0, plan_position_ = 0;  // where the next planned step starts
  LoaderCursor cursor_;
  bool stopping_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace erlangshen
