#include "parallel/grad_reducer.h"

#include <algorithm>

#include "runtime/check.h"

namespace erlangshen {

std::vector<GradBucket> plan_buckets(const std::vector<FlatRange>& segments, size_t bucket_elems) {
  std::vector<GradBucket> out;
  bool open = false;
  GradBucket cur;
  for (size_t i = 0; i < segments.size(); ++i) {
    const FlatRange& s = segments[i];
    const bool adjacent = open && (s.end == cur.begin || s.begin == cur.end);
    if (open && !adjacent) {
      out.push_back(cur);
      open = false;
    }
    if (!open) {
      cur = GradBucket{s.begin, s.end, i};
      open = true;
    } else {
      cur.begin = std::min(cur.begin, s.begin);
      cur.end = std::max(cur.end, s.end);
      cur.last_segment = i;
    }
    if (cur.end - cur.begin >= bucket_elems) {
      out.push_back(cur);
      open = false;
    }
  }
  if (open) out.push_back(cur);
  return out;
}

std::vector<size_t> bucket_piece_counts(const GradBucket& b, const std::vector<size_t>& shard_counts) {
  std::vector<size_t> counts;
  size_t shard_begin = 0;
  for (size_t c : shard_counts) {
    const size_t lo = std::max(b.begin, shard_begin), hi = std::min(b.end, shard_begin + c);
    counts.push_back(hi > lo ? hi - lo : 0);
    shard_begin += c;
  }
  return counts;
}

template <class T>
GradReducer<T>::GradReducer(Communicator& dp, std::vector<FlatRange> segments, size_t total, size_t bucket_elems,
                            bool zero1)
    : dp_(dp), segments_(std::move(segments)), zero1_(zero1) {
  std::vector<FlatRange> sorted = segments_;
  std::sort(sorted.begin(), sorted.end(), [](const FlatRange& a, const FlatRange& b) { return a.begin < b.begin; });
  size_t covered = 0;
  for (const FlatRange& s : sorted) {
    ERL_CHECK(s.begin == covered, "gradient segments must tile the buffer: gap or overlap at element " << covered);
    covered = s.end;
  }
  ERL_CHECK(covered == total, "gradient segments cover " << covered << " of " << total << " elements");
  buckets_ = plan_buckets(segments_, std::max<size_t>(1, bucket_elems));
  shard_counts_ = balanced_counts(total, dp.size());
  const size_t own = piece_offset(shard_counts_, dp.rank());
  shard_ = zero1 ? FlatRange{own, own + shard_counts_[dp.rank()]} : FlatRange{0, total};
}

template <class T>
GradReducer<T>::~GradReducer() = default;

template <class T>
void GradReducer<T>::begin(T* grads) {
  ERL_CHECK(in_flight_.empty(), "GradReducer::begin while buckets of the previous step are in flight");
  grads_ = grads;
  next_segment_ = 0;
  next_bucket_ = 0;
}

template <class T>
void GradReducer<T>::launch(size_t b) {
  const GradBucket& k = buckets_[b];
  T* data = grads_ + k.begin;
  if (zero1_) in_flight_.push_back(dp_.reduce_scatter_async(data, bucket_piece_counts(k, shard_counts_), ReduceOp::Sum));
  else in_flight_.push_back(dp_.all_reduce_async(data, k.end - k.begin, ReduceOp::Sum));
}

template <class T>
void GradReducer<T>::segment_ready(size_t begin, size_t end) {
  ERL_CHECK(grads_ != nullptr, "gradient segment ready before GradReducer::begin");
  ERL_CHECK(next_segment_ < segments_.size() && segments_[next_segment_].begin == begin &&
                segments_[next_segment_].end == end,
            "gradient segment [" << begin << ", " << end << ") became final out of the planned order");
  const size_t s = next_segment_++;
  while (next_bucket_ < buckets_.size() && buckets_[next_bucket_].last_segment <= s) launch(next_bucket_++);
}

template <class T>
void GradReducer<T>::finish() {
  ERL_CHECK(grads_ != nullptr, "GradReducer::finish without begin");
  while (next_bucket_ < buckets_.size()) launch(next_bucket_++);
  for (auto& h : in_flight_) h->wait();
  in_flight_.clear();
  grads_ = nullptr;
}

template <class T>
void GradReducer<T>::all_gather_params(T* params) {
  ERL_CHECK(zero1_, "all_gather_params without ZeRO-1");
  std::vector<CommHandle> handles;
  for (const GradBucket& k : buckets_)
    handles.push_back(dp_.all_gather_async(params + k.begin, bucket_piece_counts(k, shard_counts_)));
  for (auto& h : handles) h->wait();
}

template class GradReducer<float>;
template class GradReducer<double>;

}  // namespace erlangshen
