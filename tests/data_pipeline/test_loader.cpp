// Streaming loader: masking statistics over >= 100k samples, whole-word / n-gram rules, determinism across
// thread counts and DP layouts, cursor save/restore, disjoint DP slices covering the epoch, refusal of shards
// written with another vocabulary.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <set>

#include "data_pipeline/preprocess.h"
#include "data_pipeline/pretrain_loader.h"
#include "runtime/check.h"
#include "runtime/config.h"
#include "tests/data_pipeline/test_util.h"

namespace erlangshen {
namespace {

using namespace data;
using namespace data::testing;

// Shards of part of the shared corpus, built once for the whole test binary.
class LoaderTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!have_shared()) return;
    dir_ = new TempDir("loader");
    TextPipelineOptions t;
    t.vocab = shared_path("data/vocab/vocab.txt");
    t.dict = shared_path("data/lexicon/jieba_dict.txt");
    t.lexicons = {shared_path("data/lexicon/thuocl/THUOCL_diming.txt"),
                  shared_path("data/lexicon/thuocl/THUOCL_lishimingren.txt")};
    TextPipeline pipeline(t);
    PreprocessOptions p;
    p.inputs = {shared_path("data/corpus/zhwiki_sample.txt"), shared_path("data/corpus/classics_sanguo_yanyi.txt")};
    p.out_dir = dir_->file("shards");
    p.threads = 2;
    p.shard_tokens = 200000;
    p.progress = false;
    run_preprocess(pipeline, p);
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  void SetUp() override { ERL_REQUIRE_SHARED(); }
  static LoaderOptions options() {
    LoaderOptions o;
    o.shards = {dir_->file("shards")};
    o.vocab_path = shared_path("data/vocab/vocab.txt");
    o.seq_len = 128;
    o.micro_batch = 4;
    o.grad_accum = 2;
    o.seed = 42;
    o.threads = 2;
    return o;
  }
  static TempDir* dir_;
};
TempDir* LoaderTest::dir_ = nullptr;

struct MaskStats {
  int64_t real = 0, masked = 0, as_mask = 0, as_self = 0, as_other = 0, knowledge = 0, partial_words = 0;
  int64_t drawn[4] = {0, 0, 0, 0}, used[4] = {0, 0, 0, 0}, samples = 0;
  // samples whose knowledge spans hold at least twice the knowledge budget (the share can be reached)
  int64_t rich_samples = 0, rich_masked = 0, rich_knowledge = 0;
};

MaskStats collect(const PretrainLoader& loader, int64_t samples, int seq_len, double knowledge_share = 0) {
  MaskStats st;
  BuiltSample s;
  MaskResult m;
  const Vocab& v = loader.vocab();
  for (int64_t i = 0; i < samples; ++i) {
    const int64_t epoch = i / loader.samples_per_epoch(), pos = i % loader.samples_per_epoch();
    loader.build(epoch, pos, s, nullptr);
    SampleTokens before = s.tokens;
    loader.build(epoch, pos, s, &m);  // same draws: building again gives the same sample, then masks it
    EXPECT_EQ(before.ids.size(), s.tokens.ids.size());
    EXPECT_LE(static_cast<int>(s.tokens.ids.size()), seq_len);
    ++st.samples;
    std::vector<uint8_t> is_masked(before.ids.size(), 0);
    for (size_t k = 0; k < m.positions.size(); ++k) {
      int32_t t = m.positions[k];
      is_masked[t] = 1;
      EXPECT_EQ(m.labels[k], before.ids[t]);
      EXPECT_FALSE(before.special[t]);
      if (s.tokens.ids[t] == v.mask_id()) ++st.as_mask;
      else if (s.tokens.ids[t] == before.ids[t]) ++st.as_self;
      else ++st.as_other;
      st.knowledge += m.knowledge[k];
    }
    for (size_t t = 0; t < before.ids.size(); ++t) {
      st.real += before.special[t] ? 0 : 1;
      if (!is_masked[t]) {
        EXPECT_EQ(s.tokens.ids[t], before.ids[t]);
      }
    }
    st.masked += static_cast<int64_t>(m.positions.size());
    int64_t span_tokens = 0, sample_knowledge = 0;
    for (size_t k = 0; k < before.spans.size(); k += 3) span_tokens += before.spans[k + 1] - before.spans[k];
    for (uint8_t x : m.knowledge) sample_knowledge += x;
    if (span_tokens >= 2 * m.budget * knowledge_share) {
      ++st.rich_samples;
      st.rich_masked += static_cast<int64_t>(m.positions.size());
      st.rich_knowledge += sample_knowledge;
    }
    // whole words: within a word (word_start run inside one segment) all or none masked
    for (size_t t = 1; t < before.ids.size(); ++t)
      if (!before.special[t] && !before.special[t - 1] && !before.word_start[t] && is_masked[t] != is_masked[t - 1])
        ++st.partial_words;
    for (auto& u : m.units)
      if (u.kind == 0 && u.n <= 3) ++st.used[u.n];
    for (int n = 1; n <= 3; ++n) st.drawn[n] += m.ngram_drawn[n];
  }
  return st;
}

TEST_F(LoaderTest, KdmMaskingStatisticsOver100kSamples) {
  LoaderOptions o = options();
  o.knowledge_share = 0.4;
  PretrainLoader loader(o);
  MaskStats st = collect(loader, 100000, o.seq_len, o.knowledge_share);
  const double share = double(st.masked) / st.real;
  const double mask = double(st.as_mask) / st.masked, self = double(st.as_self) / st.masked,
               other = double(st.as_other) / st.masked, know = double(st.knowledge) / st.masked;
  std::printf("samples %lld, masked share %.4f, [MASK] %.4f, same %.4f, random %.4f, knowledge %.4f\n",
              (long long)st.samples, share, mask, self, other, know);
  EXPECT_NEAR(share, 0.15, 0.003);
  EXPECT_NEAR(mask, 0.8, 0.01);
  EXPECT_NEAR(self, 0.1, 0.01);
  EXPECT_NEAR(other, 0.1, 0.01);
  const double rich = double(st.rich_knowledge) / st.rich_masked;
  std::printf("knowledge share on the %lld samples with spans for at least twice the knowledge budget: %.4f\n",
              (long long)st.rich_samples, rich);
  EXPECT_GT(st.rich_samples, st.samples / 2);
  EXPECT_NEAR(rich, 0.4, 0.02);
  EXPECT_NEAR(know, 0.4, 0.02);  // over all samples, including those with few spans
  EXPECT_EQ(st.partial_words, 0);
  const int64_t nd = st.drawn[1] + st.drawn[2] + st.drawn[3];
  const double z = 1.0 + 1.0 / 2 + 1.0 / 3;
  for (int n = 1; n <= 3; ++n) {
    const int64_t nu = st.used[1] + st.used[2] + st.used[3];
    std::printf("n=%d drawn %.4f (expect %.4f), masked n-grams %.4f\n", n, double(st.drawn[n]) / nd, (1.0 / n) / z,
                double(st.used[n]) / nu);
    EXPECT_NEAR(double(st.drawn[n]) / nd, (1.0 / n) / z, 0.01);
  }
}

TEST_F(LoaderTest, WwmAndTokenMasking) {
  LoaderOptions o = options();
  o.masking = "wwm";
  PretrainLoader wwm(o);
  MaskStats st = collect(wwm, 20000, o.seq_len);
  EXPECT_NEAR(double(st.masked) / st.real, 0.15, 0.005);
  EXPECT_EQ(st.knowledge, 0);
  EXPECT_EQ(st.partial_words, 0);
  o.masking = "token";
  PretrainLoader tok(o);
  st = collect(tok, 20000, o.seq_len);
  EXPECT_NEAR(double(st.masked) / st.real, 0.15, 0.005);
  EXPECT_GT(st.partial_words, 0);  // token masking ignores words
}

std::map<int64_t, std::vector<int32_t>> rows_by_sample(const std::vector<PretrainBatch>& step) {
  std::map<int64_t, std::vector<int32_t>> out;
  for (const auto& b : step) {
    for (int i = 0; i < b.batch; ++i) {
      std::vector<int32_t> row(b.input_ids.begin() + i * b.seq_len, b.input_ids.begin() + (i + 1) * b.seq_len);
      row.insert(row.end(), b.token_types.begin() + i * b.seq_len, b.token_types.begin() + (i + 1) * b.seq_len);
      row.push_back(b.sop_labels[i]);
      for (size_t k = 0; k < b.mlm_positions.size(); ++k)
        if (b.mlm_positions[k] / b.seq_len == i) row.push_back(b.mlm_labels[k]), row.push_back(b.mlm_positions[k] % b.seq_len);
      out[b.sample_ids[i]] = row;
    }
  }
  return out;
}

TEST_F(LoaderTest, SameBatchesForAnyThreadCount) {
  std::vector<std::map<int64_t, std::vector<int32_t>>> runs;
  for (int threads : {0, 1, 3}) {
    LoaderOptions o = options();
    o.threads = threads;
    PretrainLoader loader(o);
    std::map<int64_t, std::vector<int32_t>> all;
    for (int s = 0; s < 20; ++s) {
      auto m = rows_by_sample(loader.next_step());
      all.insert(m.begin(), m.end());
    }
    runs.push_back(all);
  }
  EXPECT_EQ(runs[0], runs[1]);
  EXPECT_EQ(runs[0], runs[2]);
}

TEST_F(LoaderTest, CursorRestoreContinuesTheSameSequence) {
  LoaderOptions o = options();
  PretrainLoader a(o);
  for (int s = 0; s < 10; ++s) a.next_step();
  nlohmann::json saved = a.cursor();
  std::vector<std::vector<PretrainBatch>> expect;
  for (int s = 0; s < 100; ++s) expect.push_back(a.next_step());
  PretrainLoader b(o);
  b.restore(saved.get<LoaderCursor>());
  for (int s = 0; s < 100; ++s) {
    auto got = b.next_step();
    ASSERT_EQ(got.size(), expect[s].size());
    for (size_t m = 0; m < got.size(); ++m) {
      EXPECT_EQ(got[m].input_ids, expect[s][m].input_ids) << "step " << s;
      EXPECT_EQ(got[m].mlm_positions, expect[s][m].mlm_positions);
      EXPECT_EQ(got[m].mlm_labels, expect[s][m].mlm_labels);
      EXPECT_EQ(got[m].sop_labels, expect[s][m].sop_labels);
      EXPECT_EQ(got[m].sample_ids, expect[s][m].sample_ids);
    }
  }
  LoaderCursor wrong = saved.get<LoaderCursor>();
  wrong.samples_per_epoch += 1;
  EXPECT_THROW(b.restore(wrong), Error);
}

TEST_F(LoaderTest, DpRanksAreDisjointAndCoverTheEpochLikeOneRank) {
  // dp = 4 x micro_batch 2 x grad_accum 2 and dp = 1 x micro_batch 4 x grad_accum 4: the same global batch.
  LoaderOptions one = options();
  one.micro_batch = 4;
  one.grad_accum = 4;
  PretrainLoader single(one);
  const int64_t steps = single.steps_per_epoch();
  const int64_t G = 16;
  ASSERT_GT(steps, 10);
  std::vector<std::unique_ptr<PretrainLoader>> ranks;
  for (int r = 0; r < 4; ++r) {
    LoaderOptions o = options();
    o.micro_batch = 2;
    o.grad_accum = 2;
    o.dp_size = 4;
    o.dp_rank = r;
    o.threads = 1;
    ranks.push_back(std::make_unique<PretrainLoader>(o));
    EXPECT_EQ(ranks.back()->steps_per_epoch(), steps);
  }
  std::set<int64_t> seen;
  for (int64_t s = 0; s < steps; ++s) {
    auto whole = rows_by_sample(single.next_step());
    std::map<int64_t, std::vector<int32_t>> joined;
    for (int r = 0; r < 4; ++r) {
      auto part = rows_by_sample(ranks[r]->next_step());
      for (auto& [id, row] : part) {
        EXPECT_TRUE(seen.insert(id).second) << "sample " << id << " seen twice";
        EXPECT_GE(id, s * G + r * 4);
        EXPECT_LT(id, s * G + (r + 1) * 4);
        joined[id] = row;
      }
    }
    if (s < 30) {
      EXPECT_EQ(joined, whole) << "step " << s;
    }
  }
  EXPECT_EQ(static_cast<int64_t>(seen.size()), steps * G);
  EXPECT_EQ(*seen.rbegin(), steps * G - 1);
  // the next step is epoch 1, position 0
  auto next = rows_by_sample(ranks[0]->next_step());
  EXPECT_EQ(next.begin()->first, 0);
  EXPECT_EQ(ranks[0]->cursor().epoch, 1);
}

TEST_F(LoaderTest, EpochsUseDifferentOrders) {
  PretrainLoader loader(options());
  BuiltSample a, b;
  int same = 0;
  for (int64_t p = 0; p < 200; ++p) {
    loader.build(0, p, a, nullptr);
    loader.build(1, p, b, nullptr);
    same += a.tokens.ids == b.tokens.ids;
  }
  EXPECT_LT(same, 10);
}

TEST_F(LoaderTest, RefusesShardsOfAnotherVocabulary) {
  TempDir tmp("othervocab");
  std::ifstream in(shared_path("data/vocab/vocab.txt"));
  std::string v((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  write_file(tmp.file("vocab.txt"), v + "extra\n");
  LoaderOptions o = options();
  o.vocab_path = tmp.file("vocab.txt");
  try {
    PretrainLoader loader(o);
    FAIL() << "accepted shards of another vocabulary";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("sha256"), std::string::npos) << m;
    EXPECT_NE(m.find(Vocab::load(o.vocab_path).sha256()), std::string::npos) << m;
    EXPECT_NE(m.find(Vocab::load(shared_path("data/vocab/vocab.txt")).sha256()), std::string::npos) << m;
  }
}

}  // namespace
}  // namespace erlangshen

namespace erlangshen {
namespace {

// data.one_sentence_docs=false (via LoaderOptions::from_config) skips single-sentence documents and counts them.
TEST(LoaderConfig, OneSentenceDocumentsCanBeSkipped) {
  data::testing::TempDir tmp("one-sentence");
  data::testing::write_file(tmp.file("vocab.txt"), "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n北\n京\n是\n首\n都\n。\n上\n海\n");
  data::testing::write_file(tmp.file("dict.txt"), "北京 100 ns\n首都 50 n\n上海 80 ns\n是 200 v\n");
  std::string text;
  for (int d = 0; d < 40; ++d) text += d % 2 ? "北京是首都。上海是首都。北京。\n\n" : "上海是首都。\n\n";
  data::testing::write_file(tmp.file("in.txt"), text);
  data::TextPipelineOptions t;
  t.vocab = tmp.file("vocab.txt");
  t.dict = tmp.file("dict.txt");
  data::TextPipeline pipeline(t);
  data::PreprocessOptions p;
  p.inputs = {tmp.file("in.txt")};
  p.out_dir = tmp.file("shards");
  p.progress = false;
  data::run_preprocess(pipeline, p);
  Config c;
  c.data.shards = {tmp.file("shards")};
  c.data.vocab = tmp.file("vocab.txt");
  c.train.seq_len = 16;
  c.train.micro_batch = 2;
  PretrainLoader keep(LoaderOptions::from_config(c, 0, 1));
  c.data.one_sentence_docs = false;
  PretrainLoader skip(LoaderOptions::from_config(c, 0, 1));
  EXPECT_EQ(keep.skipped_one_sentence_docs(), 0);
  EXPECT_EQ(skip.skipped_one_sentence_docs(), 20);
  EXPECT_LT(skip.samples_per_epoch(), keep.samples_per_epoch());
  EXPECT_GT(skip.samples_per_epoch(), 0);
}

}  // namespace
}  // namespace erlangshen
