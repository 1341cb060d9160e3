#include "model/finetune_trainer.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "model/lr_schedule.h"
#include "model/trainer.h"
#include "runtime/timer.h"

namespace erlangshen {

namespace {

EncoderInputs inputs_of(const data::PairBatch& b) {
  return EncoderInputs{b.batch, b.seq_len, b.input_ids.data(), b.token_types.data(), b.attention_mask.data()};
}

int argmax_row(const float* z, int K) {
  int best = 0;
  for (int k = 1; k < K; ++k)
    if (z[k] > z[best]) best = k;
  return best;
}

std::vector<int32_t> gold_labels(const std::vector<data::EncodedPair>& data) {
  std::vector<int32_t> gold(data.size());
  for (size_t i = 0; i < data.size(); ++i) {
    ERL_CHECK(data[i].label >= 0, "example " << i << " has no label (cannot score an unlabeled set)");
    gold[i] = data[i].label;
  }
  return gold;
}

}  // namespace

std::vector<int64_t> label_counts(const std::vector<data::EncodedPair>& data, int num_classes) {
  std::vector<int64_t> counts(num_classes, 0);
  for (const auto& e : data)
    if (e.label >= 0 && e.label < num_classes) ++counts[e.label];
  return counts;
}

PairPredictions predict_pairs(MegatronBert<float>& model, const std::vector<data::EncodedPair>& data, int batch,
                              int32_t pad_id) {
  const int K = model.config().num_classes;
  PairPredictions out;
  out.labels.resize(data.size());
  out.logits.resize(data.size() * K);
  Stopwatch watch;
  std::vector<int64_t> idx(batch);
  Buffer<float> staged(model.exec(), model.exec().on_device() ? static_cast<size_t>(batch) * K : 0, "logits");
  for (size_t start = 0; start < data.size(); start += batch) {
    const int n = static_cast<int>(std::min<size_t>(batch, data.size() - start));
    for (int i = 0; i < n; ++i) idx[i] = static_cast<int64_t>(start) + i;
    const data::PairBatch b = data::make_pair_batch(data, idx.data(), n, pad_id);
    float* logits = out.logits.data() + start * K;
    // On the CPU the model writes the host array itself (the copy is a no-op); on CUDA the staging buffer.
    float* model_out = staged.on_device() ? staged.data() : logits;
    model.classify_forward(inputs_of(b), RngContext{}, model_out);
    copy_to_host(model.exec(), logits, model_out, static_cast<size_t>(n) * K);
    for (int i = 0; i < n; ++i) out.labels[start + i] = argmax_row(logits + static_cast<size_t>(i) * K, K);
    out.tokens += static_cast<int64_t>(b.batch) * b.seq_len;
  }
  out.seconds = watch.seconds();
  return out;
}

ClassificationMetrics score_predictions(const PairPredictions& p, const std::vector<data::EncodedPair>& data,
                                        int num_classes) {
  return compute_metrics(gold_labels(data), p.labels, num_classes);
}

double mean_loss(const PairPredictions& p, const std::vector<data::EncodedPair>& data, const ClassificationLoss& loss) {
  if (data.empty()) return 0.0;
  const std::vector<int32_t> gold = gold_labels(data);
  const std::vector<double> logits(p.logits.begin(), p.logits.end());
  return loss(logits.data(), gold.data(), static_cast<int>(gold.size()), nullptr);
}

FinetuneTrainer::FinetuneTrainer(const Config& config, Communicator& tp, const Logger& log, ClassificationLoss loss,
                                 int32_t pad_id, Exec exec)
    : config_(config),
      log_(log),
      exec_(exec),
      loss_(std::move(loss)),
      pad_id_(pad_id),
      model_(config.model, ModelHeads::Classification, tp, config.train.dropout, config.train.attention_dropout, exec) {
  if (config.model.num_classes != config.data.num_classes)
    throw Error(config.source + ": model.num_classes (" + std::to_string(config.model.num_classes) +
                ") and data.num_classes (" + std::to_string(config.data.num_classes) + ") differ");
  if (config.train.grad_accum < 1 || config.train.micro_batch < 1) throw Error("train.micro_batch/grad_accum must be >= 1");
  model_.initialize(config.train.seed);
  model_.set_recompute(parse_recompute(config.train.recompute));
  model_.set_activation_storage(parse_activation_storage(config.train.activations));
  model_.set_residual_storage(parse_activation_storage(config.train.residual));
  model_.set_attention_kernel(parse_attention_kernel(config.train.attention));
  optimizer_ = std::make_unique<AdamW<float>>(model_.table(), config.train, 0, model_.num_params(), exec);
  const std::filesystem::path metrics_dir = std::filesystem::path(config.log.metrics).parent_path();
  std::error_code ec;
  if (!config.log.metrics.empty() && !metrics_dir.empty()) std::filesystem::create_directories(metrics_dir, ec);
}

int64_t FinetuneTrainer::steps_per_epoch(int64_t n) const {
  const int64_t global = static_cast<int64_t>(config_.train.micro_batch) * config_.train.grad_accum;
  return (n + global - 1) / global;
}

FinetuneTrainer::StepStats FinetuneTrainer::train_step(const std::vector<data::EncodedPair>& train,
                                                       const int64_t* indices, int count, int64_t step,
                                                       const TrainConfig& schedule) {
  Stopwatch watch;
  const int K = config_.model.num_classes;
  StepStats st;
  model_.zero_grads();
  for (int start = 0; start < count; start += config_.train.micro_batch) {
    const int n = std::min(config_.train.micro_batch, count - start);
    const data::PairBatch b = data::make_pair_batch(train, indices + start, n, pad_id_);
    // sample_base: the pair's position in this step's batch (dropout keys, DESIGN §2).
    const size_t nk = static_cast<size_t>(n) * K;
    // Logits and dlogits in the Exec's memory: the host arrays themselves on the CPU (the copies are no-ops).
    float* logits = exec_.on_device() ? logits_dev_.data() : logits_.data();
    float* dlogits = exec_.on_device() ? dlogits_dev_.data() : dlogits_.data();
    model_.classify_forward(inputs_of(b), RngContext{config_.train.seed, step, start, true}, logits);
    copy_to_host(exec_, logits_.data(), logits, nk);
    for (size_t i = 0; i < nk; ++i) logits64_[i] = logits_[i];
    const double l = loss_(logits64_.data(), b.labels.data(), n, dlogits64_.data());
    // The loss functions average over this micro-batch; the step's loss averages over all `count` pairs.
    const double scale = static_cast<double>(n) / count;
    for (size_t i = 0; i < nk; ++i) dlogits_[i] = static_cast<float>(dlogits64_[i] * scale);
    copy_from_host(exec_, dlogits, dlogits_.data(), nk);
    model_.classify_backward(dlogits);
    st.loss += l * scale;
    for (int i = 0; i < n; ++i) st.correct += argmax_row(logits_.data() + static_cast<size_t>(i) * K, K) == b.labels[i];
    st.tokens += static_cast<int64_t>(b.batch) * b.seq_len;
  }
  const double norm = std::sqrt(grad_sq_sum_local(exec_, model_.table(), model_.grads(), 0, model_.num_params()));
  const double clip = config_.train.clip_grad;
  const double grad_scale = (clip > 0 && norm > clip) ? clip / (norm + 1e-6) : 1.0;
  st.lr = lr_at(schedule, step);
  bf16* compute_copy = model_.compute_weights_for_update();  // rewritten by AdamW with the weights
  optimizer_->step(exec_, model_.params(), model_.grads(), st.lr, grad_scale, compute_copy);
  if (compute_copy) model_.compute_weights_rewritten();
  st.grad_norm = norm;
  st.pairs = count;
  st.seconds = watch.seconds();
  return st;
}

FinetuneEval FinetuneTrainer::evaluate(const std::vector<data::EncodedPair>& dev, int64_t step, int epoch) {
  const int eval_batch = config_.train.micro_batch * config_.train.grad_accum;
  PairPredictions p = predict_pairs(model_, dev, eval_batch, pad_id_);
  FinetuneEval e;
  e.step = step;
  e.epoch = epoch;
  e.metrics = score_predictions(p, dev, config_.model.num_classes);
  e.loss = mean_loss(p, dev, loss_);
  e.pairs_per_s = p.pairs_per_s();
  return e;
}

void FinetuneTrainer::log_metrics(const nlohmann::json& record) const {
  if (config_.log.metrics.empty() || !log_.is_root()) return;
  std::ofstream f(config_.log.metrics, std::ios::app);
  if (!f) throw Error("log.metrics: cannot write " + config_.log.metrics);
  f << record.dump() << "\n";
}

FinetuneSummary FinetuneTrainer::run(const std::vector<data::EncodedPair>& train,
                                     const std::vector<data::EncodedPair>& dev) {
  if (train.empty()) throw Error("data.train: no training pairs");
  for (size_t i = 0; i < train.size(); ++i)
    ERL_CHECK(train[i].label >= 0, "training pair " << i << " has no label");
  const int K = config_.model.num_classes;
  const int global = config_.train.micro_batch * config_.train.grad_accum;
  logits_.resize(static_cast<size_t>(config_.train.micro_batch) * K);
  logits64_.resize(logits_.size());
  dlogits64_.resize(logits_.size());
  dlogits_.resize(logits_.size());
  if (exec_.on_device()) {
    logits_dev_ = Buffer<float>(exec_, logits_.size(), "logits");
    dlogits_dev_ = Buffer<float>(exec_, logits_.size(), "dlogits");
  }

  const int64_t n = static_cast<int64_t>(train.size());
  const int64_t per_epoch = steps_per_epoch(n);
  TrainConfig schedule = config_.train;  // decay over the whole run: epochs x steps per epoch
  schedule.steps = per_epoch * config_.train.epochs;
  const int64_t end = config_.train.stop_at > 0 ? std::min(config_.train.stop_at, schedule.steps) : schedule.steps;
  const int64_t eval_every = config_.train.eval_every > 0 ? config_.train.eval_every : per_epoch;
  log_.info("finetune: " + std::to_string(n) + " training pairs, " + std::to_string(dev.size()) + " dev pairs, " +
            std::to_string(per_epoch) + " steps/epoch x " + std::to_string(config_.train.epochs) + " epochs, batch " +
            std::to_string(global) + ", loss " + loss_.describe());

  FinetuneSummary summary;
  std::vector<float> best_params;
  int since_best = 0;
  int64_t step = 0;
  double window_seconds = 0;
  int64_t window_pairs = 0, window_tokens = 0;
  const double start = now_seconds();
  for (int epoch = 0; epoch < config_.train.epochs && step < end && !summary.early_stopped; ++epoch) {
    const std::vector<int64_t> order = data::shuffled_order(n, config_.train.seed, epoch);
    for (int64_t s = 0; s < per_epoch && step < end; ++s) {
      const int64_t first = s * global;
      const int count = static_cast<int>(std::min<int64_t>(global, n - first));
      ++step;
      const StepStats st = train_step(train, order.data() + first, count, step, schedule);
      if (!std::isfinite(st.loss))
        throw Error("loss became " + std::to_string(st.loss) + " at step " + std::to_string(step) +
                    " (try a lower train.lr)");
      window_seconds += st.seconds;
      window_pairs += st.pairs;
      window_tokens += st.tokens;
      nlohmann::json record = {{"step", step},       {"epoch", epoch + 1},           {"loss", st.loss},
                               {"lr", st.lr},        {"grad_norm", st.grad_norm},    {"train_acc", double(st.correct) / st.pairs},
                               {"tokens_per_s", st.tokens / std::max(1e-9, st.seconds)},
                               {"pairs_per_s", st.pairs / std::max(1e-9, st.seconds)}};
      const bool log_now = step % config_.log.every == 0 || step == end;
      if (log_now) {
        const double per_step = (now_seconds() - start) / step;
        char line[320];
        std::snprintf(line, sizeof line,
                      "step %lld/%lld | epoch %d | loss %.4f | acc %.3f | lr %.3e | gnorm %.3f | %.0f pairs/s | ETA %s",
                      (long long)step, (long long)end, epoch + 1, st.loss, double(st.correct) / st.pairs, st.lr,
                      st.grad_norm, window_pairs / std::max(1e-9, window_seconds),
                      format_duration(per_step * (end - step)).c_str());
        log_.info(line);
        window_seconds = 0, window_pairs = 0, window_tokens = 0;
      }
      const bool eval_now = !dev.empty() && (step % eval_every == 0 || step == end);
      if (eval_now) {
        FinetuneEval e = evaluate(dev, step, epoch + 1);
        const bool improved = !summary.has_best || e.metrics.macro_f1 > summary.best.metrics.macro_f1;
        record["eval_loss"] = e.loss;
        record["eval_acc"] = e.metrics.accuracy;
        record["eval_macro_f1"] = e.metrics.macro_f1;
        record["eval_pairs_per_s"] = e.pairs_per_s;
        char line[256];
        std::snprintf(line, sizeof line, "eval step %lld | dev loss %.4f | acc %.4f | macro-F1 %.4f%s", (long long)step,
                      e.loss, e.metrics.accuracy, e.metrics.macro_f1, improved ? " | best so far" : "");
        log_.info(line);
        summary.evals.push_back(e);
        if (improved) {
          summary.has_best = true;
          summary.best = e;
          best_params = model_.params_to_host();
          since_best = 0;
          if (on_best) on_best(e);
        } else if (config_.train.early_stop > 0 && ++since_best >= config_.train.early_stop) {
          log_.info("early stop: " + std::to_string(since_best) + " evaluations without a better dev macro-F1");
          summary.early_stopped = true;
        }
      }
      if (log_now || eval_now) log_metrics(record);
      if (summary.early_stopped) break;
    }
  }
  summary.steps = step;
  summary.seconds = now_seconds() - start;
  if (summary.has_best) model_.upload_params(best_params.data());
  return summary;
}

}  // namespace erlangshen
