#include "data_pipeline/pretrain_loader.h"

#include <algorithm>

#include "data_pipeline/philox_stream.h"
#include "runtime/check.h"
#include "runtime/config.h"

namespace erlangshen {

using namespace data;

LoaderOptions LoaderOptions::from_config(const Config& c, int dp_rank, int dp_size) {
  LoaderOptions o;
  o.shards = c.data.shards;
  o.vocab_path = c.data.vocab;
  o.seq_len = c.train.seq_len;
  o.micro_batch = c.train.micro_batch;
  o.grad_accum = c.train.grad_accum;
  o.dp_size = dp_size;
  o.dp_rank = dp_rank;
  o.seed = c.train.seed;
  o.mask_prob = c.data.mask_prob;
  o.knowledge_share = c.data.knowledge_share;
  o.short_seq_prob = c.data.short_seq_prob;
  o.masking = c.data.masking;
  o.max_ngram = c.data.max_ngram;
  o.threads = c.data.loader_threads;
  o.one_sentence_docs = c.data.one_sentence_docs;
  return o;
}

void to_json(nlohmann::json& j, const LoaderCursor& c) {
  j = nlohmann::json{{"epoch", c.epoch}, {"position", c.position}, {"step", c.step},
                     {"samples_per_epoch", c.samples_per_epoch}, {"seed", c.seed}};
}

void from_json(const nlohmann::json& j, LoaderCursor& c) {
  c.epoch = j.at("epoch").get<int64_t>();
  c.position = j.at("position").get<int64_t>();
  c.step = j.value("step", int64_t{0});
  c.samples_per_epoch = j.value("samples_per_epoch", int64_t{0});
  c.seed = j.value("seed", uint64_t{0});
}

PretrainLoader::PretrainLoader(const LoaderOptions& o) : opt_(o) {
  ERL_CHECK(o.micro_batch > 0 && o.grad_accum > 0 && o.dp_size > 0, "loader: micro_batch, grad_accum, dp must be > 0");
  ERL_CHECK(o.dp_rank >= 0 && o.dp_rank < o.dp_size, "loader: dp_rank " << o.dp_rank << " outside dp " << o.dp_size);
  if (o.seq_len < 8) throw Error("train.seq_len must be at least 8 for pretraining samples");
  if (o.vocab_path.empty()) throw Error("loader: no vocabulary (data.vocab) given");
  vocab_ = std::make_shared<const Vocab>(Vocab::load(o.vocab_path));
  MaskOptions mo;
  mo.mask_prob = o.mask_prob;
  mo.knowledge_share = o.knowledge_share;
  mo.mode = parse_mask_mode(o.masking);
  mo.max_ngram = o.max_ngram;
  masker_ = std::make_unique<Masker>(*vocab_, mo);

  paths_ = expand_shard_paths(o.shards);
  ChunkOptions co;
  co.seq_len = o.seq_len;
  co.short_seq_prob = o.short_seq_prob;
  co.one_sentence_docs = o.one_sentence_docs;
  co.seed = o.seed;
  std::vector<std::vector<int64_t>> doc_offsets;
  for (size_t s = 0; s < paths_.size(); ++s) {
    ShardReader r(paths_[s], vocab_->sha256());  // validates format, vocabulary hash and index
    if (r.vocab_size() != vocab_->size())
      throw Error(paths_[s] + ": shard vocab_size " + std::to_string(r.vocab_size()) + " differs from " +
                  o.vocab_path + " (" + std::to_string(vocab_->size()) + ")");
    ShardChunks c = chunk_shard(r.sentence_offsets(), r.doc_offsets(), static_cast<uint32_t>(s), co);
    skipped_one_sentence_docs_ += c.skipped_one_sentence_docs;
    samples_.push_back(std::move(c.samples));
    doc_offsets.push_back(std::move(c.doc_sample_offsets));
  }
  order_ = std::make_unique<EpochOrder>(std::move(doc_offsets), o.seed);
  global_batch_ = static_cast<int64_t>(o.micro_batch) * o.dp_size * o.grad_accum;
  if (order_->samples_per_epoch() < global_batch_)
    throw Error("the corpus has " + std::to_string(order_->samples_per_epoch()) +
                " samples per epoch, fewer than one global batch of " + std::to_string(global_batch_));
  cursor_.samples_per_epoch = order_->samples_per_epoch();
  cursor_.seed = o.seed;
  start_workers();
}

PretrainLoader::~PretrainLoader() { stop_workers(); }

std::shared_ptr<const ShardReader> PretrainLoader::reader(int32_t shard) const {
  std::lock_guard<std::mutex> lock(readers_mu_);
  auto it = readers_.find(shard);
  if (it == readers_.end()) {
    if (readers_.size() >= kMaxOpenShards) {
      auto oldest = std::min_element(readers_.begin(), readers_.end(),
                                     [](auto& a, auto& b) { return a.second.last_use < b.second.last_use; });
      readers_.erase(oldest);  // users still holding it keep it alive
    }
    auto r = std::make_shared<const ShardReader>(paths_[static_cast<size_t>(shard)], vocab_->sha256());
    it = readers_.emplace(shard, OpenShard{r, 0}).first;
  }
  it->second.last_use = ++reader_clock_;
  return it->second.reader;
}

void PretrainLoader::build(int64_t epoch, int64_t position, BuiltSample& sample, MaskResult* mask) const {
  EpochOrder::Location loc = order_->locate(epoch, position);
  auto r = reader(loc.shard);
  const SampleRef& ref = samples_[static_cast<size_t>(loc.shard)][static_cast<size_t>(loc.sample)];
  const uint64_t id = static_cast<uint64_t>(position);
  PhiloxStream sampling(derive_key(opt_.seed, RngPurpose::Sampling, static_cast<uint64_t>(epoch), 0, 2), id);
  build_sample(*r, r->span_begins(), ref, opt_.seq_len, *vocab_, sampling, sample);
  if (mask) {
    PhiloxStream masking(derive_key(opt_.seed, RngPurpose::Masking, static_cast<uint64_t>(epoch), 0, 0), id);
    masker_->mask(sample.tokens, masking, *mask);
  }
}

std::vector<PretrainBatch> PretrainLoader::build_step(int64_t epoch, int64_t position) const {
  const int B = opt_.micro_batch, T = opt_.seq_len;
  std::vector<PretrainBatch> out(static_cast<size_t>(opt_.grad_accum));
  BuiltSample s;
  MaskResult m;
  const int64_t rank_base = position + static_cast<int64_t>(opt_.dp_rank) * B * opt_.grad_accum;
  for (int a = 0; a < opt_.grad_accum; ++a) {
    PretrainBatch& pb = out[static_cast<size_t>(a)];
    pb.batch = B;
    pb.seq_len = T;
    pb.input_ids.assign(static_cast<size_t>(B) * T, vocab_->pad_id());  // (B, T)
    pb.token_types.assign(static_cast<size_t>(B) * T, 0);              // (B, T)
    pb.attention_mask.assign(static_cast<size_t>(B) * T, 0);           // (B, T)
    pb.sop_labels.resize(static_cast<size_t>(B));                      // (B)
    pb.sample_ids.resize(static_cast<size_t>(B));                      // (B)
    for (int b = 0; b < B; ++b) {
      const int64_t pos = rank_base + static_cast<int64_t>(a) * B + b;
      build(epoch, pos, s, &m);
      const size_t row = static_cast<size_t>(b) * T;
      const size_t L = s.tokens.ids.size();
      std::copy(s.tokens.ids.begin(), s.tokens.ids.end(), pb.input_ids.begin() + static_cast<long>(row));
      std::copy(s.token_types.begin(), s.token_types.end(), pb.token_types.begin() + static_cast<long>(row));
      std::fill_n(pb.attention_mask.begin() + static_cast<long>(row), L, 1);
      for (size_t k = 0; k < m.positions.size(); ++k) {
        pb.mlm_positions.push_back(static_cast<int32_t>(row) + m.positions[k]);
        pb.mlm_labels.push_back(m.labels[k]);
      }
      pb.sop_labels[static_cast<size_t>(b)] = s.sop_label;
      pb.sample_ids[static_cast<size_t>(b)] = pos;
    }
  }
  return out;
}

void PretrainLoader::plan_ahead() {
  const int64_t capacity = std::max(2, 2 * opt_.threads + 1);
  const int64_t N = order_->samples_per_epoch();
  while (next_task_ < next_to_consume_ + capacity) {
    if (plan_position_ + global_batch_ > N) ++plan_epoch_, plan_position_ = 0;
    Task t;
    t.epoch = plan_epoch_;
    t.position = plan_position_;
    tasks_.emplace(next_task_++, std::move(t));
    plan_position_ += global_batch_;
  }
}

void PretrainLoader::start_workers() {
  std::lock_guard<std::mutex> lock(mu_);
  stopping_ = false;
  tasks_.clear();
  next_task_ = next_to_build_ = next_to_consume_ = 0;
  plan_epoch_ = cursor_.epoch;
  plan_position_ = cursor_.position;
  if (opt_.threads <= 0) return;
  plan_ahead();
  for (int i = 0; i < opt_.threads; ++i) {
    workers_.emplace_back([this] {
      std::unique_lock<std::mutex> lock(mu_);
      for (;;) {
        cv_work_.wait(lock, [&] { return stopping_ || next_to_build_ < next_task_; });
        if (stopping_) return;
        const int64_t idx = next_to_build_++;
        const int64_t epoch = tasks_[idx].epoch, position = tasks_[idx].position;
        lock.unlock();
        std::vector<PretrainBatch> result;
        std::string error;
        try {
          result = build_step(epoch, position);
        } catch (const std::exception& e) {
          error = e.what();
        }
        lock.lock();
        auto it = tasks_.find(idx);
        if (it != tasks_.end()) {
          it->second.result = std::move(result);
          it->second.error = std::move(error);
          it->second.done = true;
        }
        cv_done_.notify_all();
      }
    });
  }
}

void PretrainLoader::stop_workers() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_work_.notify_all();
  for (auto& w : workers_) w.join();
  workers_.clear();
}

std::vector<PretrainBatch> PretrainLoader::next_step() {
  std::vector<PretrainBatch> out;
  int64_t epoch, position;
  if (opt_.threads <= 0) {
    std::lock_guard<std::mutex> lock(mu_);
    if (cursor_.position + global_batch_ > order_->samples_per_epoch()) ++cursor_.epoch, cursor_.position = 0;
    epoch = cursor_.epoch, position = cursor_.position;
  }
  if (opt_.threads <= 0) {
    out = build_step(epoch, position);
  } else {
    std::unique_lock<std::mutex> lock(mu_);
    const int64_t idx = next_to_consume_;
    cv_done_.wait(lock, [&] { return tasks_[idx].done; });
    Task t = std::move(tasks_[idx]);
    tasks_.erase(idx);
    if (!t.error.empty()) throw Error(t.error);
    ++next_to_consume_;
    plan_ahead();
    lock.unlock();
    cv_work_.notify_all();
    out = std::move(t.result);
    epoch = t.epoch, position = t.position;
  }
  std::lock_guard<std::mutex> lock(mu_);
  cursor_.epoch = epoch;
  cursor_.position = position + global_batch_;
  ++cursor_.step;
  return out;
}

LoaderCursor PretrainLoader::cursor() const {
  std::lock_guard<std::mutex> lock(mu_);
  return cursor_;
}

void PretrainLoader::restore(const LoaderCursor& c) {
  if (c.samples_per_epoch != 0 && c.samples_per_epoch != order_->samples_per_epoch())
    throw Error("loader cursor is for a corpus of " + std::to_string(c.samples_per_epoch) +
                " samples per epoch, but these shards give " + std::to_string(order_->samples_per_epoch()));
  if (c.seed != opt_.seed)
    throw Error("loader cursor was saved with seed " + std::to_string(c.seed) + ", this run uses " +
                std::to_string(opt_.seed));
  if (c.epoch < 0 || c.position < 0 || c.position > order_->samples_per_epoch())
    throw Error("loader cursor position is out of range");
  stop_workers();
  cursor_ = c;
  cursor_.samples_per_epoch = order_->samples_per_epoch();
  start_workers();
}

}  // namespace erlangshen
