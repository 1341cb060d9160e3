// Where the pretraining trainer gets each optimizer step's micro-batches for this DP rank.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data_pipeline/batch.h"

namespace erlangshen {

class PretrainDataSource {
 public:
  virtual ~PretrainDataSource() = default;
  // grad_accum micro-batches of the next step: micro-batch j holds global-batch samples
  // [dp_rank * micro_batch * grad_accum + j * micro_batch, ... + micro_batch).
  virtual std::vector<PretrainBatch> next_step() = 0;
  virtual nlohmann::json cursor() const = 0;            // saved in checkpoints
  virtual void restore(const nlohmann::json& cursor) = 0;
  virtual std::string describe() const = 0;
};

// Random token batches (model/synthetic_batch.h), a pure function of (seed, step, sample id).
class SyntheticDataSource final : public PretrainDataSource {
 public:
  SyntheticDataSource(int micro_batch, int grad_accum, int seq_len, int vocab, double mask_prob, uint64_t seed,
                      int dp_rank, bool full_length = false);
  std::vector<PretrainBatch> next_step() override;
  nlohmann::json cursor() const override { return {{"step", step_}}; }
  void restore(const nlohmann::json& c) override { step_ = c.at("step").get<int64_t>(); }
  std::string describe() const override { return "synthetic random tokens"; }

 private:
  int micro_batch_, grad_accum_, seq_len_, vocab_;
  double mask_prob_;
  uint64_t seed_;
  int dp_rank_;
  bool full_length_;
  int64_t step_ = 0;
};

}  // namespace erlangshen
