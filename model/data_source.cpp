#include "model/data_source.h"

#include "model/synthetic_batch.h"

namespace erlangshen {

SyntheticDataSource::SyntheticDataSource(int micro_batch, int grad_accum, int seq_len, int vocab, double mask_prob,
                                         uint64_t seed, int dp_rank, bool full_length)
    : micro_batch_(micro_batch), grad_accum_(grad_accum), seq_len_(seq_len), vocab_(vocab), mask_prob_(mask_prob),
      seed_(seed), dp_rank_(dp_rank), full_length_(full_length) {}

std::vector<PretrainBatch> SyntheticDataSource::next_step() {
  std::vector<PretrainBatch> out;
  const int64_t rank_base = static_cast<int64_t>(dp_rank_) * micro_batch_ * grad_accum_;
  for (int j = 0; j < grad_accum_; ++j)
    out.push_back(make_synthetic_batch(micro_batch_, seq_len_, vocab_, mask_prob_, seed_, step_,
                                       rank_base + static_cast<int64_t>(j) * micro_batch_, full_length_));
  ++step_;
  return out;
}

}  // namespace erlangshen
