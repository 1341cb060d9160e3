// The fine-tuning loop for sentence-pair classification (QBQTC): epochs over the training pairs in a
// (seed, epoch)-determined order; each optimizer step takes micro_batch x grad_accum pairs, each micro-batch
// padded to its longest row; classifier logits -> configured loss (ce | label_smoothing | pcl |
// pcl_reference, model/classification_loss.h) -> backward; global-norm clipping; AdamW with warmup + decay
// over epochs x steps-per-epoch. Every train.eval_every steps (0: at the end of each epoch) it scores the dev
// set; the parameters with the best dev macro-F1 are kept (and handed to on_best, which writes them), and
// train.early_stop evaluations without improvement end the run. Rank 0 prints a progress line and writes
// JSON-lines metrics (with eval_acc / eval_macro_f1 on evaluation steps).
#pragma once
#include <functional>
#include <memory>
#include <vector>

#include "data_pipeline/pair_dataset.h"
#include "model/adamw.h"
#include "model/classification_loss.h"
#include "model/megatron_bert.h"
#include "model/metrics.h"
#include "runtime/config.h"
#include "runtime/logging.h"

namespace erlangshen {

// Class predictions of a model over a dataset (dropout off).
struct PairPredictions {
  std::vector<int32_t> labels;  // (N) argmax class
  std::vector<float> logits;    // (N, K)
  int64_t tokens = 0;           // padded tokens processed (sum of B x T over batches)
  double seconds = 0;
  double pairs_per_s() const { return seconds > 0 ? labels.size() / seconds : 0.0; }
};

// Runs the classifier over `data` in file order, `batch` pairs at a time, each padded to its longest row.
PairPredictions predict_pairs(MegatronBert<float>& model, const std::vector<data::EncodedPair>& data, int batch,
                              int32_t pad_id);
// Metrics of predictions against the gold labels stored in `data` (every label must be set).
ClassificationMetrics score_predictions(const PairPredictions& p, const std::vector<data::EncodedPair>& data,
                                        int num_classes);
// Mean loss of the logits under `loss` (every label must be set).
double mean_loss(const PairPredictions& p, const std::vector<data::EncodedPair>& data, const ClassificationLoss& loss);

struct FinetuneEval {
  int64_t step = 0;
  int epoch = 0;
  double loss = 0;
  ClassificationMetrics metrics;
  double pairs_per_s = 0;
};

struct FinetuneSummary {
  int64_t steps = 0;
  bool early_stopped = false;
  bool has_best = false;
  FinetuneEval best;
  std::vector<FinetuneEval> evals;
  double seconds = 0;
};

class FinetuneTrainer {
 public:
  // The model is initialised from train.seed; the caller then loads checkpoint.init into model() (launch/:
  // load_init_weights) before run().
  FinetuneTrainer(const Config& config, Communicator& tp, const Logger& log, ClassificationLoss loss, int32_t pad_id,
                  Exec exec = {});

  // Trains on `train`, selecting by macro-F1 on `dev` (when `dev` is empty: no selection, the final weights are
  // kept). On return the model holds the selected (best) parameters.
  FinetuneSummary run(const std::vector<data::EncodedPair>& train, const std::vector<data::EncodedPair>& dev);

  // Called with each new best evaluation, while the model holds those parameters.
  std::function<void(const FinetuneEval& best)> on_best;

  MegatronBert<float>& model() { return model_; }
  const ClassificationLoss& loss() const { return loss_; }
  int64_t steps_per_epoch(int64_t train_size) const;

 private:
  struct StepStats {
    double loss = 0, lr = 0, grad_norm = 0, seconds = 0;
    int64_t pairs = 0, tokens = 0, correct = 0;
  };
  StepStats train_step(const std::vector<data::EncodedPair>& train, const int64_t* indices, int count, int64_t step,
                       const TrainConfig& schedule);
  FinetuneEval evaluate(const std::vector<data::EncodedPair>& dev, int64_t step, int epoch);
  void log_metrics(const nlohmann::json& record) const;

  Config config_;
  Logger log_;
  Exec exec_;
  ClassificationLoss loss_;
  int32_t pad_id_;
  MegatronBert<float> model_;
  std::unique_ptr<AdamW<float>> optimizer_;
  std::vector<float> logits_;  // (micro_batch, K) on the host
  std::vector<double> logits64_, dlogits64_;
  std::vector<float> dlogits_;
  Buffer<float> logits_dev_, dlogits_dev_;  // CUDA: the same in device memory (empty on the CPU)
};

// Class counts of the labeled pairs (K).
std::vector<int64_t> label_counts(const std::vector<data::EncodedPair>& data, int num_classes);

}  // namespace erlangshen
