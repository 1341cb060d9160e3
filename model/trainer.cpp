#include "model/trainer.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>

#include "model/lr_schedule.h"
#include "runtime/timer.h"
#if defined(ERLANGSHEN_HAVE_CUDA)
#include "runtime/cuda/memory.h"
#endif

namespace erlangshen {

namespace {

#if defined(ERLANGSHEN_HAVE_CUDA)
// The device memory request of this configuration on one rank (TP rank `tp_rank` of `tp_size`, optimizer state
// shared by `dp_size` ranks under ZeRO-1).
cuda::TrainingMemoryRequest device_memory_request(const Config& config, int tp_rank, int tp_size, int dp_size) {
  const ModelConfig& m = config.model;
  const ParamTable table = build_param_table(m, ModelHeads::Pretraining, tp_rank, tp_size);
  cuda::TrainingMemoryRequest q;
  q.params = static_cast<int64_t>(table.total());
  q.shape.hidden = m.hidden;
  q.shape.layers = m.layers;
  q.shape.heads_local = m.heads / tp_size;
  q.shape.head_dim = m.head_dim();
  q.shape.ffn_local = m.ffn / tp_size;
  q.shape.vocab_local = static_cast<int>(table.at("bert.embeddings.word_embeddings.weight").local_shape[0]);
  q.shape.masked_fraction = config.data.mask_prob;
  q.micro_batch = config.train.micro_batch;
  q.seq_len = config.train.seq_len;
  q.recompute = parse_recompute(config.train.recompute);
  if (parse_activation_storage(config.train.activations) == ActivationStorage::BF16) q.shape.act_bytes = 2;
  if (parse_activation_storage(config.train.residual) == ActivationStorage::BF16) q.shape.residual_bytes = 2;
  q.shape.flash_attention = parse_attention_kernel(config.train.attention) == AttentionKernel::Flash;
  q.optimizer_shards = config.parallel.zero1 ? dp_size : 1;
  return q;
}
#endif

// On CUDA, before anything is allocated: the device memory plan of this configuration (runtime/cuda/memory.h),
// logged on rank 0 and checked against free device memory (check_fits fails with the setting that would fit).
// The plan counts the bf16 compute copy of the parameters, which the model allocates under train.activations=bf16
// (with fp32 storage the GEMMs round the fp32 weights instead, and the plan errs on the safe side by 2 bytes each).
Exec check_device_memory(const Config& config, const TrainerGroups& groups, const Logger& log, Exec exec) {
  if (!exec.on_device()) return exec;
#if defined(ERLANGSHEN_HAVE_CUDA)
  const cuda::TrainingMemoryRequest q =
      device_memory_request(config, groups.tp->rank(), groups.tp->size(), groups.dp->size());
  int64_t free_bytes = 0, total_bytes = 0;
  cuda::device_memory_info(&free_bytes, &total_bytes);
  if (log.is_root()) log.info(cuda::plan_training_memory(q).report());
  cuda::check_fits(q, free_bytes);
  const std::string hint = cuda::headroom_hint(q, free_bytes);
  if (log.is_root() && !hint.empty()) log.info(hint);
#endif
  return exec;
}

// Communication time so far over the trainer's distinct communicators (host groups, and the device groups when
// they are separate objects): exposed = the caller waited, hidden = async collectives overlapped with compute.
struct CommTotals {
  double exposed = 0, hidden = 0;
};
CommTotals comm_totals(const TrainerGroups& g) {
  CommTotals t;
  std::vector<const Communicator*> seen;
  for (const Communicator* c : {g.tp, g.dp, g.device_tp, g.device_dp}) {
    if (c == nullptr || std::find(seen.begin(), seen.end(), c) != seen.end()) continue;
    seen.push_back(c);
    const CommStats s = c->stats();
    t.exposed += s.exposed();
    t.hidden += s.hidden();
  }
  return t;
}

}  // namespace

#if defined(ERLANGSHEN_HAVE_CUDA)
cuda::MemoryPlan device_memory_plan(const Config& config, int tp_rank, int tp_size, int dp_size) {
  return cuda::plan_training_memory(device_memory_request(config, tp_rank, tp_size, dp_size));
}
#endif

int largest_device_micro_batch(const Config& config, int tp_size, int dp_size) {
#if defined(ERLANGSHEN_HAVE_CUDA)
  int64_t free_bytes = 0, total_bytes = 0;
  cuda::device_memory_info(&free_bytes, &total_bytes);
  return cuda::largest_fitting_micro_batch(device_memory_request(config, 0, tp_size, dp_size), free_bytes);
#else
  (void)config, (void)tp_size, (void)dp_size;
  throw Error("the largest micro-batch that fits is a GPU question: this build has no CUDA backend");
#endif
}

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
      exec_(check_device_memory(config, groups, log, exec)),
      model_(config.model, ModelHeads::Pretraining, groups.model_tp(), config.train.dropout, config.train.attention_dropout,
             exec) {
  model_.initialize(config.train.seed);
  model_.set_recompute(parse_recompute(config.train.recompute));
  model_.set_activation_storage(parse_activation_storage(config.train.activations));
  model_.set_residual_storage(parse_activation_storage(config.train.residual));
  model_.set_attention_kernel(parse_attention_kernel(config.train.attention));
  make_reducer(static_cast<size_t>(config.parallel.bucket_mb) * (1u << 20) / sizeof(float));
  // The overlapped update needs the whole buffer updated here (so that AdamW rewrites the bf16 compute copy); under
  // ZeRO-1 the all-gather of the shards follows the update anyway.
  if (exec_.on_device() && config.train.overlap_optimizer && !(reducer_ && reducer_->zero1())) {
    update_bounds_ = model_.forward_read_bounds();
    update_awaited_ = update_ranges();  // nothing pending
    update_stream_ = std::make_unique<SideStream>(exec_, update_ranges());
    model_.set_params_needed_hook([this](size_t end) { await_update(end); });
    // Without DP the gradients are final as the last backward makes them: their norm is summed beside it.
    if (!reducer_) norm_by_segment_ = std::make_unique<GradSqSumBySegment<float>>(model_.table(), exec_);
  }
  global_batch_ = static_cast<int64_t>(config.train.micro_batch) * groups.dp->size() * config.train.grad_accum;
  model_.reserve(config.train.micro_batch, config.train.seq_len);
}

void PretrainTrainer::make_reducer(size_t bucket_elems) {
  if (groups_.dp->size() > 1) {
    std::vector<FlatRange> segments;
    for (const auto& [b, e] : model_.grad_ready_segments()) segments.push_back(FlatRange{b, e});
    reducer_ = std::make_unique<GradReducer<float>>(groups_.model_dp(), std::move(segments), model_.num_params(), bucket_elems,
                                                    config_.parallel.zero1);
  }
  // Without ZeRO-1 every DP rank updates the whole buffer; with it, its shard only (master weights + AdamW state).
  const FlatRange own = reducer_ ? reducer_->shard() : FlatRange{0, model_.num_params()};
  optimizer_ = std::make_unique<AdamW<float>>(model_.table(), config_.train, own.begin, own.end, exec_);
}

void PretrainTrainer::set_dp_bucket_elems(size_t elems) {
  ERL_CHECK(step_ == 0 && optimizer_->step_count() == 0, "set_dp_bucket_elems after training started");
  make_reducer(elems);
}

StepReport PretrainTrainer::train_step() {
  Stopwatch watch;
  Communicator& dp = *groups_.dp;
  Communicator& tp = *groups_.tp;
  const CommTotals comm_before = comm_totals(groups_);
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

  ERL_CHECK(!batches.empty(), "PretrainTrainer: a step without micro-batches");
  model_.start_gradient_accumulation();  // the first backward overwrites the layer weight gradients
  double sums[4] = {0, 0, 0, 0};  // mlm loss, sop loss, mlm correct, sop correct
  const int64_t rank_base = static_cast<int64_t>(dp.rank()) * config_.train.micro_batch * config_.train.grad_accum;
  for (size_t j = 0; j < batches.size(); ++j) {
    // Gradients accumulate locally; the DP reduction runs once per step, overlapped with the last backward:
    // each bucket starts as soon as backward has made its gradients final.
    const bool last = j + 1 == batches.size();
    if (reducer_ && last) {
      reducer_->begin(model_.grads());
      model_.set_grad_ready_hook([this](size_t b, size_t e) { reducer_->segment_ready(b, e); });
    }
    if (norm_by_segment_ && last) {  // the side stream sums each segment's squares once the backward has written it
      norm_by_segment_->begin();
      model_.set_grad_ready_hook([this](size_t b, size_t e) {
        update_stream_->follow_main();
        norm_by_segment_->add(update_stream_->exec(), model_.grads(), b, e);
      });
    }
    RngContext rng{config_.train.seed, step, rank_base + static_cast<int64_t>(j) * config_.train.micro_batch, true};
    PretrainLosses l = model_.pretrain_forward_backward(batches[j], rng, mlm_den, sop_den, true);
    sums[0] += l.mlm_sum;
    sums[1] += l.sop_sum;
    sums[2] += l.mlm_correct;
    sums[3] += l.sop_correct;
  }
  // Gradients: g = sum over DP of g_r (global denominators make the sum the global-batch gradient); under
  // ZeRO-1 this rank holds g on its shard only.
  model_.set_grad_ready_hook(nullptr);
  if (reducer_) reducer_->finish();
  const FlatRange own = reducer_ ? reducer_->shard() : FlatRange{0, model_.num_params()};
  const bool zero1 = reducer_ && reducer_->zero1();

  // Global grad norm: ||g||^2 = sum over TP ranks (shards; replicated tensors on TP rank 0 only) and, under
  // ZeRO-1, over DP ranks (disjoint shards). One DP all-reduce carries it with the loss sums and token count.
  double totals[6] = {sums[0], sums[1], sums[2], sums[3], static_cast<double>(tokens), 0.0};
  totals[5] = norm_by_segment_ ? norm_by_segment_->total(update_stream_->exec())
                              : grad_sq_sum_local(exec_, model_.table(), model_.grads(), own.begin, own.end);
  dp.all_reduce(totals, zero1 ? 6 : 5, ReduceOp::Sum);
  double norm_sq = totals[5];
  tp.all_reduce(&norm_sq, 1, ReduceOp::Sum);
  const double norm = std::sqrt(norm_sq);
  const double clip = config_.train.clip_grad;
  const double grad_scale = (clip > 0 && norm > clip) ? clip / (norm + 1e-6) : 1.0;
  const double lr = lr_at(config_.train, step);
  // Updating every weight (no ZeRO-1 shard), AdamW rewrites the bf16 compute copy in the same pass; under ZeRO-1
  // the next forward refreshes it from the all-gathered weights.
  const bool whole = !zero1 && own.begin == 0 && own.end == model_.num_params();
  bf16* compute_copy = whole ? model_.compute_weights_for_update() : nullptr;
  if (update_stream_ && whole) {
    update_overlapped(lr, grad_scale, compute_copy);
  } else {
    optimizer_->step(exec_, model_.params(), model_.grads(), lr, grad_scale, compute_copy);
  }
  if (compute_copy) model_.compute_weights_rewritten();
  if (zero1) reducer_->all_gather_params(model_.params());
  // CUDA: the step's kernels are done before the clock stops (no-op on the CPU). An overlapped update is not waited
  // for: it runs beside the next step's forward, whose time includes what of it the forward could not hide.
  synchronize(exec_);
  step_ = step;

  StepReport r;
  r.step = step;
  r.mlm_loss = totals[0] / mlm_den;
  r.sop_loss = totals[1] / sop_den;
  r.loss = r.mlm_loss + r.sop_loss;
  r.mlm_acc = totals[2] / mlm_den;
  r.sop_acc = totals[3] / sop_den;
  r.lr = lr;
  r.grad_norm = norm;
  r.tokens = static_cast<int64_t>(totals[4]);
  r.step_seconds = watch.seconds();
  r.tokens_per_s = totals[4] / r.step_seconds;
  const CommTotals comm_after = comm_totals(groups_);
  r.comm_seconds = comm_after.exposed - comm_before.exposed;
  r.comm_hidden_seconds = std::max(0.0, comm_after.hidden - comm_before.hidden);
  return r;
}

// AdamW on the side stream after everything the main stream has done (the backward, the gradient norm), one range
// of the parameters at a time in the order the next forward reads them, each range marked when done.
void PretrainTrainer::update_overlapped(double lr, double grad_scale, bf16* compute_copy) {
  ERL_CHECK(!update_pending(), "PretrainTrainer: an optimizer step while the previous one is pending");
  SideStream& side = *update_stream_;
  side.follow_main();
  optimizer_->begin_step();
  float* params = model_.params();
  for (int k = 0; k < update_ranges(); ++k) {
    optimizer_->update_range(side.exec(), params, model_.grads(), lr, grad_scale, compute_copy, update_bounds_[k],
                             update_bounds_[k + 1]);
    side.mark(k);
  }
  update_awaited_ = 0;
}

// The main stream is about to read the parameters [0, end): it waits for the first range that reaches `end` (the
// side stream runs the ranges in order, so that mark covers the ones before it).
void PretrainTrainer::await_update(size_t end) {
  if (!update_pending()) return;
  int k = 0;
  while (k + 1 < update_ranges() && update_bounds_[k + 1] < end) ++k;
  if (k < update_awaited_) return;
  update_stream_->main_waits_for(k);
  update_awaited_ = k + 1;
}

void PretrainTrainer::finish_update() { await_update(update_bounds_.empty() ? 0 : update_bounds_.back()); }

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
  std::string text = line;
  const int tp = groups_.tp->size(), dp = groups_.dp->size();
  if (tp * dp > 1) {
    // Layout, then exposed communication per rank this step and the share of communication hidden behind compute.
    std::snprintf(line, sizeof line, " | tp%d x dp%d%s | comm/rank", tp, dp, reducer_ && reducer_->zero1() ? " zero1" : "");
    text += line;
    const auto& c = r.rank_comm_seconds;
    if (c.size() <= 8) {
      for (size_t i = 0; i < c.size(); ++i) {
        std::snprintf(line, sizeof line, " r%zu %.3fs", i, c[i]);
        text += line;
      }
    } else if (!c.empty()) {
      std::snprintf(line, sizeof line, " min %.3fs max %.3fs (%zu ranks)", *std::min_element(c.begin(), c.end()),
                    *std::max_element(c.begin(), c.end()), c.size());
      text += line;
    }
    std::snprintf(line, sizeof line, " | overlap %.0f%%", 100.0 * r.overlap());
    text += line;
  }
  log_.info(text);
  if (!config_.log.metrics.empty()) {
    std::ofstream f(config_.log.metrics, std::ios::app);
    if (!f) throw Error("log.metrics: cannot write " + config_.log.metrics);
    nlohmann::json j = {{"step", r.step},          {"loss", r.loss},
                        {"mlm_loss", r.mlm_loss},  {"sop_loss", r.sop_loss},
                        {"mlm_acc", r.mlm_acc},    {"sop_acc", r.sop_acc},
                        {"lr", r.lr},              {"grad_norm", r.grad_norm},
                        {"tokens_per_s", r.tokens_per_s}, {"step_seconds", r.step_seconds},
                        {"comm_seconds", r.comm_seconds}, {"comm_hidden_seconds", r.comm_hidden_seconds},
                        {"overlap", r.overlap()},         {"rank_comm_seconds", r.rank_comm_seconds},
                        {"tokens", r.tokens},
                        {"consumed_samples", consumed_samples()}};
    f << j.dump() << "\n";
  }
}

bool PretrainTrainer::agree_to_stop(bool stop) {
  // A signal may reach some ranks only: every rank must leave the loop after the same step.
  double flag = stop ? 1.0 : 0.0;
  if (groups_.world != nullptr) {
    groups_.world->all_reduce(&flag, 1, ReduceOp::Max);
  } else {
    groups_.dp->all_reduce(&flag, 1, ReduceOp::Max);
    groups_.tp->all_reduce(&flag, 1, ReduceOp::Max);
  }
  return flag > 0;
}

void PretrainTrainer::gather_rank_comm(StepReport& r) {
  Communicator* world = groups_.world;
  if (world == nullptr || world->size() == 1) {
    r.rank_comm_seconds = {r.comm_seconds};
    return;
  }
  r.rank_comm_seconds.assign(world->size(), 0.0);
  r.rank_comm_seconds[world->rank()] = r.comm_seconds;
  world->all_gather(r.rank_comm_seconds.data(), std::vector<size_t>(world->size(), 1));
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
    if (last.step % config_.log.every == 0 || last.step == end) {
      gather_rank_comm(last);
      log_step(last);
    }
    const bool stop = agree_to_stop(should_stop && should_stop(last));
    const bool periodic = config_.checkpoint.every > 0 && last.step % config_.checkpoint.every == 0;
    if (save_checkpoint && (periodic || stop || last.step == end)) save_checkpoint(last.step);
    if (stop) break;
  }
  return last;
}

}  // namespace erlangshen
