#include "data_pipeline/epoch_order.h"

#include <algorithm>

#include "data_pipeline/philox_stream.h"
#include "runtime/check.h"

namespace erlangshen::data {

EpochOrder::EpochOrder(std::vector<std::vector<int64_t>> doc_sample_offsets, uint64_t seed)
    : doc_offsets_(std::move(doc_sample_offsets)), seed_(seed) {
  for (const auto& d : doc_offsets_) total_ += d.empty() ? 0 : d.back();
}

std::shared_ptr<EpochOrder::EpochPlan> EpochOrder::plan(int64_t epoch) const {
  auto it = plans_.find(epoch);
  if (it != plans_.end()) return it->second;
  auto p = std::make_shared<EpochPlan>();
  const int32_t S = static_cast<int32_t>(doc_offsets_.size());
  p->shards.resize(static_cast<size_t>(S));
  for (int32_t s = 0; s < S; ++s) p->shards[s] = s;
  PhiloxStream rng(derive_key(seed_, RngPurpose::Shuffle, static_cast<uint64_t>(epoch), 0, 0), 0);
  rng.shuffle(p->shards.data(), p->shards.size());
  p->prefix.assign(static_cast<size_t>(S) + 1, 0);
  for (int32_t i = 0; i < S; ++i) {
    const auto& d = doc_offsets_[static_cast<size_t>(p->shards[i])];
    p->prefix[i + 1] = p->prefix[i] + (d.empty() ? 0 : d.back());
  }
  while (plans_.size() >= 3) plans_.erase(plans_.begin());  // keep the most recent epochs
  plans_[epoch] = p;
  return p;
}

std::shared_ptr<const EpochOrder::ShardOrder> EpochOrder::shard_order(EpochPlan& p, int64_t epoch, int32_t shard) const {
  auto it = p.shard_orders.find(shard);
  if (it != p.shard_orders.end()) return it->second;
  auto o = std::make_shared<ShardOrder>();
  const auto& d = doc_offsets_[static_cast<size_t>(shard)];
  const int32_t D = static_cast<int32_t>(d.size()) - 1;
  for (int32_t i = 0; i < D; ++i)
    if (d[i + 1] > d[i]) o->docs.push_back(i);
  PhiloxStream rng(derive_key(seed_, RngPurpose::Shuffle, static_cast<uint64_t>(epoch), 0, 1u + static_cast<uint32_t>(shard)), 0);
  rng.shuffle(o->docs.data(), o->docs.size());
  o->prefix.assign(o->docs.size() + 1, 0);
  for (size_t i = 0; i < o->docs.size(); ++i) o->prefix[i + 1] = o->prefix[i] + d[o->docs[i] + 1] - d[o->docs[i]];
  if (p.shard_orders.size() >= 8) p.shard_orders.erase(p.shard_orders.begin());
  p.shard_orders[shard] = o;
  return o;
}

EpochOrder::Location EpochOrder::locate(int64_t epoch, int64_t position) const {
  ERL_CHECK(position >= 0 && position < total_, "sample position " << position << " outside the epoch of " << total_);
  std::shared_ptr<EpochPlan> p;
  std::shared_ptr<const ShardOrder> o;
  size_t si;
  {
    std::lock_guard<std::mutex> lock(mu_);
    p = plan(epoch);
    si = static_cast<size_t>(std::upper_bound(p->prefix.begin(), p->prefix.end(), position) - p->prefix.begin() - 1);
    o = shard_order(*p, epoch, p->shards[si]);
  }
  const int64_t in_shard = position - p->prefix[si];
  size_t di = static_cast<size_t>(std::upper_bound(o->prefix.begin(), o->prefix.end(), in_shard) - o->prefix.begin() - 1);
  const int32_t shard = p->shards[si];
  const int32_t doc = o->docs[di];
  return Location{shard, doc_offsets_[static_cast<size_t>(shard)][static_cast<size_t>(doc)] + (in_shard - o->prefix[di])};
}

}  // namespace erlangshen::data
