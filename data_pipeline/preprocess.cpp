#include "data_pipeline/preprocess.h"

#include <sys/resource.h>
#include <unistd.h>

#include <condition_variable>
#include <deque>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "data_pipeline/corpus_reader.h"
#include "data_pipeline/shard_writer.h"
#include "data_pipeline/utf8.h"
#include "runtime/check.h"
#include "runtime/timer.h"

namespace erlangshen::data {

namespace {

double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         1e-6 * static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

struct Batch {
  int64_t seq = 0;
  std::vector<RawDocument> docs;
  // results
  std::vector<TokenizedDoc> out;
  TextStats stats;
  std::vector<std::string> warnings;  // invalid UTF-8 locations
};

// Decodes and processes every document of a batch.
void process_batch(const TextProcessor& proc, const std::vector<std::string>& files, Batch& b, int max_warnings) {
  std::vector<std::u32string> lines;
  b.out.resize(b.docs.size());
  for (size_t d = 0; d < b.docs.size(); ++d) {
    const RawDocument& raw = b.docs[d];
    lines.resize(raw.lines.size());
    for (size_t l = 0; l < raw.lines.size(); ++l) {
      lines[l].clear();
      size_t bad = decode_utf8(raw.lines[l], lines[l]);
      if (bad) {
        b.stats.invalid_utf8 += static_cast<int64_t>(bad);
        ++b.stats.invalid_utf8_lines;
        if (static_cast<int>(b.warnings.size()) < max_warnings)
          b.warnings.push_back(files[static_cast<size_t>(raw.file_index)] + ":" + std::to_string(raw.line_numbers[l]) +
                               ": " + std::to_string(bad) + " invalid UTF-8 sequence(s) replaced");
      }
    }
    b.stats.lines += static_cast<int64_t>(raw.lines.size());
    b.stats.bytes += raw.bytes;
    proc.process_document(lines, b.out[d], b.stats);
  }
  b.docs.clear();
  b.docs.shrink_to_fit();
}

class Progress {
 public:
  Progress(bool enabled, int64_t total) : enabled_(enabled && isatty(2)), total_(total) {}
  void update(int64_t bytes, int64_t docs, bool final = false) {
    if (!enabled_) return;
    double t = watch_.seconds();
    if (!final && t - last_ < 0.25) return;
    last_ = t;
    double frac = total_ > 0 ? static_cast<double>(bytes) / static_cast<double>(total_) : 1.0;
    int bar = static_cast<int>(frac * 30);
    std::fprintf(stderr, "\r[%.*s%*s] %5.1f%% %.1f/%.1f MB  %.0f docs/s  %.1f MB/s ", bar,
                 "==============================", 30 - bar, "", 100 * frac, bytes / 1e6, total_ / 1e6,
                 docs / std::max(t, 1e-9), bytes / 1e6 / std::max(t, 1e-9));
    if (final) std::fputc('\n', stderr);
    std::fflush(stderr);
  }

 private:
  bool enabled_;
  int64_t total_;
  Stopwatch watch_;
  double last_ = -1;
};

}  // namespace

PreprocessReport run_preprocess(const TextPipeline& pipeline, const PreprocessOptions& o) {
  PreprocessReport rep;
  Stopwatch wall;
  const double cpu0 = cpu_seconds();
  CorpusReaderOptions ro;
  ro.max_line_bytes = o.max_line_bytes;
  CorpusReader reader(o.inputs, ro);
  rep.input_bytes = reader.total_bytes();

  ShardMeta meta;
  meta.vocab_sha256 = pipeline.tokenizer().vocab_sha256();
  meta.vocab_size = pipeline.tokenizer().vocab().size();
  meta.lowercase = pipeline.tokenizer().lowercase();
  meta.segmenter = pipeline.segmenter_id();
  meta.lexicon_sha256 = pipeline.lexicon().sha256();
  for (const auto& f : o.inputs) meta.source += (meta.source.empty() ? "" : "\n") + f;
  ShardWriterOptions wo;
  wo.dir = o.out_dir;
  wo.target_tokens = o.shard_tokens;
  wo.gzip_level = o.gzip_level;
  ShardWriter writer(wo, meta);

  const int threads = o.threads > 0 ? o.threads : std::max(1u, std::thread::hardware_concurrency());
  rep.threads = threads;
  const TextProcessor proc = pipeline.processor();
  const size_t max_in_flight = static_cast<size_t>(2 * threads + 2);
  constexpr int64_t kBatchBytes = 1 << 20;
  constexpr size_t kBatchDocs = 512;

  std::mutex mu;
  std::condition_variable cv_work, cv_done;
  std::deque<Batch*> todo;
  std::map<int64_t, std::unique_ptr<Batch>> done;
  bool closing = false;
  std::string worker_error;
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&] {
      for (;;) {
        Batch* b;
        {
          std::unique_lock<std::mutex> lock(mu);
          cv_work.wait(lock, [&] { return closing || !todo.empty(); });
          if (todo.empty()) return;
          b = todo.front();
          todo.pop_front();
        }
        try {
          process_batch(proc, o.inputs, *b, o.max_warnings);
        } catch (const std::exception& e) {
          std::lock_guard<std::mutex> lock(mu);
          if (worker_error.empty()) worker_error = e.what();
        }
        {
          std::lock_guard<std::mutex> lock(mu);
          done[b->seq].reset(b);
        }
        cv_done.notify_all();
      }
    });
  }
  auto stop_workers = [&] {
    {
      std::lock_guard<std::mutex> lock(mu);
      closing = true;
    }
    cv_work.notify_all();
    for (auto& w : workers) w.join();
    workers.clear();
    for (Batch* b : todo) delete b;
    todo.clear();
  };

  Progress progress(o.progress, rep.input_bytes);
  int64_t next_seq = 0, write_seq = 0, bytes_done = 0, docs_done = 0;
  size_t in_flight = 0;
  // Writes every finished batch that is next in order; `wait` blocks for the next one.
  auto drain = [&](bool wait) {
    for (;;) {
      std::unique_ptr<Batch> b;
      {
        std::unique_lock<std::mutex> lock(mu);
        if (wait) cv_done.wait(lock, [&] { return done.count(write_seq) > 0; });
        auto it = done.find(write_seq);
        if (it == done.end()) return;
        b = std::move(it->second);
        done.erase(it);
        if (!worker_error.empty()) throw Error(worker_error);
      }
      for (const TokenizedDoc& d : b->out) writer.add(d);
      rep.stats.add(b->stats);
      for (auto& w : b->warnings)
        if (static_cast<int>(rep.warnings.size()) < o.max_warnings) rep.warnings.push_back(w);
      bytes_done += b->stats.bytes;
      docs_done += b->stats.documents + b->stats.empty_documents;
      ++write_seq;
      --in_flight;
      progress.update(bytes_done, docs_done);
      wait = false;
    }
  };
  try {
    auto batch = std::make_unique<Batch>();
    int64_t batch_bytes = 0;
    RawDocument doc;
    auto submit = [&] {
      batch->seq = next_seq++;
      {
        std::lock_guard<std::mutex> lock(mu);
        todo.push_back(batch.release());
      }
      cv_work.notify_one();
      ++in_flight;
      batch = std::make_unique<Batch>();
      batch_bytes = 0;
      drain(in_flight >= max_in_flight);
    };
    while (reader.next(doc)) {
      batch_bytes += doc.bytes;
      batch->docs.push_back(std::move(doc));
      doc = RawDocument();
      if (batch_bytes >= kBatchBytes || batch->docs.size() >= kBatchDocs) submit();
    }
    if (!batch->docs.empty()) submit();
    while (in_flight > 0) drain(true);
  } catch (...) {
    stop_workers();
    throw;
  }
  stop_workers();
  progress.update(bytes_done, docs_done, true);
  rep.shards = writer.finish();
  rep.stats.long_lines = reader.long_lines();
  for (const auto& loc : reader.long_line_locations())
    rep.warnings.push_back(loc + ": line longer than " + std::to_string(o.max_line_bytes) + " bytes skipped");
  rep.wall_seconds = wall.seconds();
  rep.cpu_seconds = cpu_seconds() - cpu0;
  std::ofstream(o.out_dir + "/preprocess_summary.json") << summary_json(rep) << "\n";
  return rep;
}

std::string summary_json(const PreprocessReport& r) {
  const TextStats& s = r.stats;
  nlohmann::json j;
  j["documents"] = s.documents;
  j["empty_documents"] = s.empty_documents;
  j["one_sentence_documents"] = s.one_sentence_documents;
  j["lines"] = s.lines;
  j["sentences"] = s.sentences;
  j["tokens"] = s.tokens;
  j["unk_tokens"] = s.unk_tokens;
  j["unk_rate"] = s.tokens ? static_cast<double>(s.unk_tokens) / static_cast<double>(s.tokens) : 0.0;
  j["words"] = s.words;
  j["words_per_sentence"] = s.sentences ? static_cast<double>(s.words) / static_cast<double>(s.sentences) : 0.0;
  j["invalid_utf8_sequences"] = s.invalid_utf8;
  j["invalid_utf8_lines"] = s.invalid_utf8_lines;
  j["long_lines_skipped"] = s.long_lines;
  for (int k = 1; k <= 2; ++k) {
    const char* name = span_kind_name(static_cast<SpanKind>(k));
    j["spans"][name]["count"] = s.span_count[k];
    j["spans"][name]["tokens"] = s.span_tokens[k];
    j["spans"][name]["token_coverage"] =
        s.tokens ? static_cast<double>(s.span_tokens[k]) / static_cast<double>(s.tokens) : 0.0;
  }
  j["shards"] = r.shards;
  j["input_bytes"] = r.input_bytes;
  j["wall_seconds"] = r.wall_seconds;
  j["cpu_seconds"] = r.cpu_seconds;
  j["threads"] = r.threads;
  j["mb_per_s"] = r.wall_seconds > 0 ? r.input_bytes / 1e6 / r.wall_seconds : 0.0;
  j["mb_per_cpu_s"] = r.cpu_seconds > 0 ? r.input_bytes / 1e6 / r.cpu_seconds : 0.0;
  j["warnings"] = r.warnings;
  return j.dump(2);
}

std::string format_summary(const PreprocessReport& r) {
  const TextStats& s = r.stats;
  auto pct = [](int64_t a, int64_t b) { return b ? 100.0 * static_cast<double>(a) / static_cast<double>(b) : 0.0; };
  std::ostringstream os;
  char line[512];
  std::snprintf(line, sizeof line, "documents      %lld (skipped empty: %lld, one sentence: %lld)\n",
                (long long)s.documents, (long long)s.empty_documents, (long long)s.one_sentence_documents);
  os << line;
  std::snprintf(line, sizeof line, "sentences      %lld (%.1f words, %.1f tokens per sentence)\n",
                (long long)s.sentences, s.sentences ? double(s.words) / s.sentences : 0.0,
                s.sentences ? double(s.tokens) / s.sentences : 0.0);
  os << line;
  std::snprintf(line, sizeof line, "tokens         %lld (UNK %.3f%%)\n", (long long)s.tokens, pct(s.unk_tokens, s.tokens));
  os << line;
  std::snprintf(line, sizeof line, "spans          entity %lld (%.1f%% of tokens), event %lld (%.1f%% of tokens)\n",
                (long long)s.span_count[1], pct(s.span_tokens[1], s.tokens), (long long)s.span_count[2],
                pct(s.span_tokens[2], s.tokens));
  os << line;
  std::snprintf(line, sizeof line, "bad input      %lld invalid UTF-8 sequences on %lld lines, %lld over-long lines skipped\n",
                (long long)s.invalid_utf8, (long long)s.invalid_utf8_lines, (long long)s.long_lines);
  os << line;
  std::snprintf(line, sizeof line, "shards         %zu\n", r.shards.size());
  os << line;
  std::snprintf(line, sizeof line, "speed          %.2f MB in %.2f s = %.1f MB/s (%d threads; %.1f MB per CPU-second)\n",
                r.input_bytes / 1e6, r.wall_seconds, r.wall_seconds > 0 ? r.input_bytes / 1e6 / r.wall_seconds : 0.0,
                r.threads, r.cpu_seconds > 0 ? r.input_bytes / 1e6 / r.cpu_seconds : 0.0);
  os << line;
  for (const auto& w : r.warnings) os << "warning: " << w << "\n";
  return os.str();
}

}  // namespace erlangshen::data
