// Pretraining data from preprocessed HDF5 shards: the data pipeline's streaming loader behind the
// trainer's PretrainDataSource interface (its cursor goes into checkpoints).
#pragma once
#include <memory>

#include "data_pipeline/pretrain_loader.h"
#include "model/data_source.h"

namespace erlangshen {

class ShardDataSource final : public PretrainDataSource {
 public:
  ShardDataSource(const Config& config, int dp_rank, int dp_size)
      : loader_(std::make_unique<PretrainLoader>(LoaderOptions::from_config(config, dp_rank, dp_size))) {}
  std::vector<PretrainBatch> next_step() override { return loader_->next_step(); }
  nlohmann::json cursor() const override { return loader_->cursor(); }
  void restore(const nlohmann::json& c) override { loader_->restore(c.get<LoaderCursor>()); }
  std::string describe() const override {
    std::string d = std::to_string(loader_->samples_per_epoch()) + " samples per epoch (" +
                    std::to_string(loader_->steps_per_epoch()) + " steps)";
    if (loader_->skipped_one_sentence_docs() > 0)
      d += ", " + std::to_string(loader_->skipped_one_sentence_docs()) + " one-sentence documents skipped";
    return d;
  }
  PretrainLoader& loader() { return *loader_; }

 private:
  std::unique_ptr<PretrainLoader> loader_;
};

}  // namespace erlangshen
