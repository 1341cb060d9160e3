// Data-parallel gradient reduction in buckets, overlapped with backward (DESIGN §2, issue 4).
//
// DP rank r holds g_r, the gradient of its slice of the global batch. Loss denominators are global, so the
// global-batch gradient is the plain sum g = sum_r g_r (no averaging; gradient accumulation sums micro-batches
// locally first and reduces once per optimizer step).
//
// Backward makes the flat gradient buffer final in segments, in a fixed order (the model reports them:
// heads + final LayerNorm, then layer L-1 ... 0, then the embeddings). Consecutive segments are packed into
// buckets of at least `bucket_elems` (Megatron / PyTorch DDP bucketing), and a bucket's collective starts as
// soon as its last segment is final, so it runs while backward computes the layers below it:
//   plain DP:  all_reduce(bucket)        every rank ends with g on the whole buffer
//   ZeRO-1:    reduce_scatter(bucket)    rank r ends with g on (bucket ∩ shard_r), shard_r = piece r of
//                                        balanced_counts(total, dp); it updates only shard_r of the master
//                                        weights and AdamW state, then all_gather_params() rebuilds the
//                                        replicated parameters bucket by bucket.
#pragma once
#include <cstddef>
#include <vector>

#include "parallel/communicator.h"

namespace erlangshen {

struct FlatRange {
  size_t begin = 0, end = 0;
  size_t size() const { return end - begin; }
};

struct GradBucket {
  size_t begin = 0, end = 0;  // flat element range
  size_t last_segment = 0;    // index (in ready order) of the segment whose completion starts the bucket
};

// Packs segments (in the order they become final; consecutive ones adjacent in memory) into buckets that close
// once they hold >= bucket_elems elements; a segment never straddles two buckets.
std::vector<GradBucket> plan_buckets(const std::vector<FlatRange>& segments, size_t bucket_elems);

// This rank's piece of each bucket under ZeRO-1: |bucket ∩ shard_s| for every DP rank s.
std::vector<size_t> bucket_piece_counts(const GradBucket& b, const std::vector<size_t>& shard_counts);

template <class T>
class GradReducer {
 public:
  // segments: ready order, covering [0, total) exactly. zero1: reduce-scatter instead of all-reduce.
  GradReducer(Communicator& dp, std::vector<FlatRange> segments, size_t total, size_t bucket_elems, bool zero1);
  ~GradReducer();

  bool zero1() const { return zero1_; }
  // Elements whose reduced gradient this rank holds after finish() and whose parameters it updates:
  // its ZeRO-1 shard, or the whole buffer.
  FlatRange shard() const { return shard_; }
  const std::vector<GradBucket>& buckets() const { return buckets_; }

  // Arms the reducer for one backward over `grads` (the last micro-batch of the step).
  void begin(T* grads);
  // The model's gradient-ready hook: segment [begin, end) of the armed buffer is final.
  void segment_ready(size_t begin, size_t end);
  // Starts every bucket not yet started and waits for all of them.
  void finish();
  // ZeRO-1, after the optimizer updated shard(): params <- all_gather of every rank's shard.
  void all_gather_params(T* params);

 private:
  void launch(size_t bucket);

  Communicator& dp_;
  std::vector<FlatRange> segments_;
  std::vector<GradBucket> buckets_;
  std::vector<size_t> shard_counts_;
  FlatRange shard_;
  bool zero1_;
  T* grads_ = nullptr;
  size_t next_segment_ = 0, next_bucket_ = 0;
  std::vector<CommHandle> in_flight_;
};

}  // namespace erlangshen
