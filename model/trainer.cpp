#include "model/trainer.h"

#include <cmath>
#include <cstdio>
#include <fstream>

#include "model/lr_schedule.h"
#include "runtime/timer.h"

namespace erlangshen {

std::string format_duration(double s) {
  char buf[32];
  const int64_t t = static_cast<int64_t>(s + 0.5);
  if (t >= 3600) std::snprintf(buf, sizeof buf, "%lldh%02lldm", (long long)(t / 3600), (long long)(t % 3600 / 60));
  else if (t >= 60) std::snprintf(buf, sizeof buf, "%lldm%02llds", (long long)(t / 60), (long long)(t % 60));
  else std::snprintf(buf, sizeof buf, "%llds", (long long)t);
  return buf;
}

PretrainTrainer::PretrainTrainer(const Config& config, TrainerGroups groups, PretrainDataSource& data,
                                 const Logger& log, Exec exec)
    : config_(config),
      groups_(groups),
      data_(data),
      log_(log),
      exec_(exec),
      model_(config.model, ModelHeads::Pretraining, *groups.tp, config.train.dropout, config.train.attention_dropout,
             exec) {
  model_.initialize(config.train.seed);
  optimizer_ = std::make_unique<AdamW<float>>(model_.table(), config.train);
  global_batch_ = static_cast<int64_t>(config.train.micro_batch) * groups.dp->size() * config.train.grad_accum;
  model_.reserve(config.train.micro_batch, config.train.seq_len);
}

StepReport PretrainTrainer::train_step() {
  Stopwatch watch;
  Communicator& dp = *groups_.dp;
  Communicator& tp = *groups_.tp;
  const double comm_before = dp.comm_seconds() + tp.comm_seconds();
  std::vector<PretrainBatch> batches = data_.next_step();
  const int64_t step = step_ + 1;  // 1-based index of the update being computed

  // Global denominators: masked tokens and samples of the whole step over all DP ranks.
  double counts[2] = {0, 0};
  int64_t tokens = 0;
  for (const auto& b : batches) {
    counts[0] += static_cast<double>(b.mlm_positions.size());
    counts[1] += b.batch;
    for (uint8_t v : b.attention_mask) tokens += v;
  }
  dp.all_reduce(counts, 2, ReduceOp::Sum);
  const double mlm_den = std::max(1.0, counts[0]), sop_den = std::max(1.0, counts[1]);

  model_.zero_grads();
  double sums[4] = {0, 0, 0, 0};  // mlm loss, sop loss, mlm correct, sop correct
  const int64_t rank_base = static_cast<int64_t>(dp.rank()) * config_.train.micro_batch * config_.train.grad_accum;
  for (size_t j = 0; j < batches.size(); ++j) {
    RngContext rng{config_.train.seed, step, rank_base + static_cast<int64_t>(j) * config_.train.micro_batch, true};
    PretrainLosses l = model_.pretrain_forward_backward(batches[j], rng, mlm_den, sop_den, true);
    sums[0] += l.mlm_sum;
    sums[1] += l.sop_sum;
    sums[2] += l.mlm_correct;
    sums[3] += l.sop_correct;
  }
  // Gradients: sum over DP (global denominators make the sum the global-batch gradient).
  dp.all_reduce(model_.grads(), model_.num_params(), ReduceOp::Sum);
  dp.all_reduce(sums, 4, ReduceOp::Sum);

  // Global grad norm: shards summed over TP, replicated tensors counted once.
  double norm_sq = grad_sq_sum_local(exec_, model_.table(), model_.grads(), 0, model_.num_params());
  tp.all_reduce(&norm_sq, 1, ReduceOp::Sum);
  const double norm = std::sqrt(norm_sq);
  const double clip = config_.train.clip_grad;
  const double grad_scale = (clip > 0 && norm > clip) ? clip / (norm + 1e-6) : 1.0;
  const double lr = lr_at(config_.train, step);
  optimizer_->step(exec_, model_.params(), model_.grads(), lr, grad_scale);
  step_ = step;

  StepReport r;
  r.step = step;
  r.mlm_loss = sums[0] / mlm_den;
  r.sop_loss = sums[1] / sop_den;
  r.loss = r.mlm_loss + r.sop_loss;
  r.mlm_acc = sums[2] / mlm_den;
  r.sop_acc = sums[3] / sop_den;
  r.lr = lr;
  r.grad_norm = norm;
  double token_count = static_cast<double>(tokens);
  dp.all_reduce(&token_count, 1, ReduceOp::Sum);
  r.tokens = static_cast<int64_t>(token_count);
  r.step_seconds = watch.seconds();
  r.tokens_per_s = token_count / r.step_seconds;
  r.comm_seconds = dp.comm_seconds() + tp.comm_seconds() - comm_before;
  return r;
}

void PretrainTrainer::log_step(const StepReport& r) {
  if (!log_.is_root()) return;
  const int64_t end = config_.train.stop_at > 0 ? std::min(config_.train.stop_at, config_.train.steps) : config_.train.steps;
  const double elapsed = now_seconds() - run_start_;
  const double per_step = elapsed / std::max<int64_t>(1, r.step - run_start_step_);
  char line[512];
  std::snprintf(line, sizeof line,
                "step %lld/%lld | loss %.4f (mlm %.4f sop %.4f) | mlm acc %.3f | lr %.3e | gnorm %.3f | %.0f tok/s | "
                "comm %.0f%% | ETA %s",
                (long long)r.step, (long long)end, r.loss, r.mlm_loss, r.sop_loss, r.mlm_acc, r.lr, r.grad_norm,
                r.tokens_per_s, 100.0 * r.comm_seconds / std::max(1e-9, r.step_seconds),
                format_duration(per_step * (end - r.step)).c_str());
  log_.info(line);
  if (!config_.log.metrics.empty()) {
    std::ofstream f(config_.log.metrics, std::ios::app);
    if (!f) throw Error("log.metrics: cannot write " + config_.log.metrics);
    nlohmann::json j = {{"step", r.step},          {"loss", r.loss},
                        {"mlm_loss", r.mlm_loss},  {"sop_loss", r.sop_loss},
                        {"mlm_acc", r.mlm_acc},    {"sop_acc", r.sop_acc},
                        {"lr", r.lr},              {"grad_norm", r.grad_norm},
                        {"tokens_per_s", r.tokens_per_s}, {"step_seconds", r.step_seconds},
                        {"comm_seconds", r.comm_seconds}, {"tokens", r.tokens},
                        {"consumed_samples", consumed_samples()}};
    f << j.dump() << "\n";
  }
}

StepReport PretrainTrainer::run() {
  const int64_t end = config_.train.stop_at > 0 ? std::min(config_.train.stop_at, config_.train.steps) : config_.train.steps;
  run_start_ = now_seconds();
  run_start_step_ = step_;
  StepReport last;
  last.step = step_;
  while (step_ < end) {
    last = train_step();
    if (!std::isfinite(last.loss))
      throw Error("loss became " + std::to_string(last.loss) + " at step " + std::to_string(last.step) +
                  " (try a lower train.lr or train.clip_grad)");
    if (last.step % config_.log.every == 0 || last.step == end) log_step(last);
    const bool stop = should_stop && should_stop(last);
    const bool periodic = config_.checkpoint.every > 0 && last.step % config_.checkpoint.every == 0;
    if (save_checkpoint && (periodic || stop || last.step == end)) save_checkpoint(last.step);
    if (stop) break;
  }
  return last;
}

}  // namespace erlangshen
