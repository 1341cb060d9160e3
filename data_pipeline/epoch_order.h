// The order of samples in an epoch, identical on every rank: shards in a permutation drawn from
// (seed, Shuffle, epoch, site 0); inside each shard, documents in a permutation drawn from
// (seed, Shuffle, epoch, site 1 + shard); inside a document, its samples in order.
// Position p of epoch e -> (shard, index of the sample in that shard's chunk list).
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

namespace erlangshen::data {

class EpochOrder {
 public:
  // doc_sample_offsets[s]: (D_s + 1) prefix counts of samples per document of shard s.
  EpochOrder(std::vector<std::vector<int64_t>> doc_sample_offsets, uint64_t seed);
  int64_t samples_per_epoch() const { return total_; }
  struct Location {
    int32_t shard;
    int64_t sample;  // index into the shard's chunk list
  };
  Location locate(int64_t epoch, int64_t position) const;  // thread-safe

 private:
  struct ShardOrder {  // one shard in one epoch
    std::vector<int32_t> docs;     // (D) permuted document indices (docs with samples only)
    std::vector<int64_t> prefix;   // (D+1) samples before each permuted doc
  };
  struct EpochPlan {
    std::vector<int32_t> shards;   // (S) permuted shard indices
    std::vector<int64_t> prefix;   // (S+1)
    std::map<int32_t, std::shared_ptr<const ShardOrder>> shard_orders;  // built on demand
  };
  std::shared_ptr<EpochPlan> plan(int64_t epoch) const;
  std::shared_ptr<const ShardOrder> shard_order(EpochPlan& p, int64_t epoch, int32_t shard) const;

  std::vector<std::vector<int64_t>> doc_offsets_;
  uint64_t seed_;
  int64_t total_ = 0;
  mutable std::mutex mu_;
  mutable std::map<int64_t, std::shared_ptr<EpochPlan>> plans_;  // at most a few recent epochs
};

}  // namespace erlangshen::data
