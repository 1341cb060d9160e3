// Sentence-pair reader, encoding, batching, shuffling and the split recipe (data_pipeline/pair_dataset.h).
#include <gtest/gtest.h>

#include <set>

#include "data_pipeline/pair_dataset.h"
#include "runtime/check.h"
#include "tests/finetune/finetune_test_util.h"

namespace erlangshen::data {
namespace {

using ft_testing::ScratchDir;

std::string error_of(const std::string& path, const PairReaderOptions& o) {
  try {
    read_pair_file(path, o);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(PairReader, ReadsQbqtcLinesWithStringOrNumberLabels) {
  ScratchDir dir("pair_reader_ok");
  const std::string path = dir.write("a.json",
                                     "{\"id\": 0, \"query\": \"小孩咳嗽\", \"title\": \"感冒\", \"label\": \"1\"}\n"
                                     "\n"
                                     "{\"id\": 7, \"query\": \"q\", \"title\": \"t\", \"label\": 2}\n"
                                     "{\"query\": \"q2\", \"title\": \"t2\", \"label\": \"0\"}");  // no final newline, no id
  const PairFile f = read_pair_file(path, PairReaderOptions{});
  ASSERT_EQ(f.examples.size(), 3u);
  EXPECT_EQ(f.examples[0].a, "小孩咳嗽");
  EXPECT_EQ(f.examples[0].label, 1);
  EXPECT_EQ(f.examples[1].label, 2);
  EXPECT_EQ(f.examples[1].id, 7);
  EXPECT_EQ(f.examples[1].line, 3);
  EXPECT_EQ(f.examples[2].id, 2);  // record index when the id field is absent
  EXPECT_EQ(f.label_counts, (std::vector<int64_t>{1, 1, 1}));
  EXPECT_EQ(f.lines, 3);
}

TEST(PairReader, ConfigurableFieldsAndLabelNames) {
  ScratchDir dir("pair_reader_fields");
  const std::string path = dir.write("b.json",
                                     "{\"sentence1\": \"a\", \"sentence2\": \"b\", \"relevant\": \"entailment\"}\n"
                                     "{\"sentence1\": \"c\", \"sentence2\": \"d\", \"relevant\": \"neutral\"}\n");
  PairReaderOptions o;
  o.fields.a = "sentence1";
  o.fields.b = "sentence2";
  o.fields.label = "relevant";
  o.label_names = {"contradiction", "neutral", "entailment"};
  const PairFile f = read_pair_file(path, o);
  ASSERT_EQ(f.examples.size(), 2u);
  EXPECT_EQ(f.examples[0].label, 2);
  EXPECT_EQ(f.examples[1].label, 1);
  EXPECT_EQ(label_to_string(2, o.label_names), "entailment");
  EXPECT_EQ(label_to_string(2, {}), "2");
  // Any number of classes.
  PairReaderOptions five;
  five.num_classes = 5;
  EXPECT_EQ(parse_label(nlohmann::json(4), five, nullptr), 4);
  EXPECT_EQ(parse_label(nlohmann::json("4"), five, nullptr), 4);
  EXPECT_EQ(parse_label(nlohmann::json("5"), five, nullptr), -1);
  EXPECT_EQ(parse_label(nlohmann::json("01"), five, nullptr), -1);
  EXPECT_EQ(parse_label(nlohmann::json(1.5), five, nullptr), -1);
}

TEST(PairReader, MalformedLinesNameFileAndLine) {
  ScratchDir dir("pair_reader_bad");
  const std::string good = "{\"query\": \"q\", \"title\": \"t\", \"label\": \"1\"}\n";
  PairReaderOptions o;
  struct Case {
    std::string line, expect;
  };
  const std::vector<Case> cases = {
      {"{\"query\": \"q\", \"title\": \"t\", \"label\": \"1\"", "invalid JSON"},
      {"[1, 2]", "expected a JSON object"},
      {"{\"query\": \"q\", \"label\": \"1\"}", "missing field 'title'"},
      {"{\"query\": 5, \"title\": \"t\", \"label\": \"1\"}", "field 'query' must be a string"},
      {"{\"query\": \"q\", \"title\": \"t\"}", "missing label field 'label'"},
      {"{\"query\": \"q\", \"title\": \"t\", \"label\": \"3\"}", "unknown label '3'"},
      {"{\"query\": \"q\", \"title\": \"t\", \"label\": true}", "is not a class label"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string path = dir.write("bad" + std::to_string(i) + ".json", good + good + cases[i].line + "\n" + good);
    const std::string msg = error_of(path, o);
    EXPECT_NE(msg.find(path + ":3: "), std::string::npos) << msg;
    EXPECT_NE(msg.find(cases[i].expect), std::string::npos) << msg;
  }
  EXPECT_NE(error_of(dir.file("missing.json"), o).find("cannot open"), std::string::npos);
}

TEST(PairReader, SkipBadLinesCountsThem) {
  ScratchDir dir("pair_reader_skip");
  const std::string path = dir.write("s.json",
                                     "{\"query\": \"q\", \"title\": \"t\", \"label\": \"1\"}\n"
                                     "not json\n"
                                     "{\"query\": \"q\", \"title\": \"t\", \"label\": \"9\"}\n"
                                     "{\"query\": \"q\", \"title\": \"t\", \"label\": \"2\"}\n");
  PairReaderOptions o;
  o.skip_bad_lines = true;
  const PairFile f = read_pair_file(path, o);
  EXPECT_EQ(f.examples.size(), 2u);
  EXPECT_EQ(f.skipped, 2);
  ASSERT_EQ(f.problems.size(), 2u);
  EXPECT_NE(f.problems[0].find(":2: invalid JSON"), std::string::npos);
  EXPECT_NE(f.problems[1].find(":3: unknown label '9'"), std::string::npos);
}

TEST(PairReader, UnlabeledTestFiles) {
  ScratchDir dir("pair_reader_unlabeled");
  const std::string path = dir.write("t.json", "{\"id\": 3, \"query\": \"q\", \"title\": \"t\"}\n");
  PairReaderOptions o;
  EXPECT_NE(error_of(path, o).find("missing label"), std::string::npos);
  o.labels_required = false;
  const PairFile f = read_pair_file(path, o);
  ASSERT_EQ(f.examples.size(), 1u);
  EXPECT_EQ(f.examples[0].label, -1);
}

TEST(PairBatching, PadsToTheLongestRowOfTheBatch) {
  std::vector<EncodedPair> data(3);
  data[0] = {{101, 5, 102, 6, 102}, {0, 0, 0, 1, 1}, 1};
  data[1] = {{101, 7, 8, 9, 102, 10, 11, 102}, {0, 0, 0, 0, 0, 1, 1, 1}, 2};
  data[2] = {{101, 102, 102}, {0, 0, 1}, 0};
  const int64_t idx[2] = {2, 0};
  const PairBatch b = make_pair_batch(data, idx, 2, 0);
  EXPECT_EQ(b.batch, 2);
  EXPECT_EQ(b.seq_len, 5);  // the longer of rows 2 and 0, not the dataset's longest (8)
  EXPECT_EQ(b.input_ids, (std::vector<int32_t>{101, 102, 102, 0, 0, 101, 5, 102, 6, 102}));
  EXPECT_EQ(b.token_types, (std::vector<int32_t>{0, 0, 1, 0, 0, 0, 0, 0, 1, 1}));
  EXPECT_EQ(b.attention_mask, (std::vector<uint8_t>{1, 1, 1, 0, 0, 1, 1, 1, 1, 1}));
  EXPECT_EQ(b.labels, (std::vector<int32_t>{0, 1}));
}

TEST(PairBatching, ShuffleIsAPermutationFixedBySeedAndEpoch) {
  const auto a = shuffled_order(1000, 7, 0), b = shuffled_order(1000, 7, 0), c = shuffled_order(1000, 7, 1);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  EXPECT_EQ(std::set<int64_t>(a.begin(), a.end()).size(), 1000u);
  EXPECT_EQ(*std::max_element(a.begin(), a.end()), 999);
}

TEST(PairSplit, RemovesExcludedPairsAndHoldsOutDistinctPairs) {
  std::vector<PairExample> pool;
  for (int i = 0; i < 100; ++i) pool.push_back(PairExample{i, "q" + std::to_string(i % 40), "t" + std::to_string(i % 50), i % 3, i + 1});
  std::vector<PairExample> exclude = {PairExample{0, "q1", "t1", 1, 1}};
  int64_t removed = 0;
  const auto kept = remove_pairs(pool, exclude, &removed);
  EXPECT_EQ(removed, 1);  // i = 1 only (i = 201 ... would repeat the pair; not in range)
  std::vector<PairExample> train, held;
  split_holdout(kept, 0.1, 3, train, held);
  EXPECT_EQ(train.size() + held.size(), kept.size());
  std::set<std::string> train_keys, held_keys;
  for (const auto& e : train) train_keys.insert(pair_key(e));
  for (const auto& e : held) held_keys.insert(pair_key(e));
  for (const auto& k : held_keys) EXPECT_EQ(train_keys.count(k), 0u) << "pair on both sides";
  std::vector<PairExample> train2, held2;
  split_holdout(kept, 0.1, 3, train2, held2);
  ASSERT_EQ(held2.size(), held.size());
  for (size_t i = 0; i < held.size(); ++i) EXPECT_EQ(held[i].id, held2[i].id);
}

TEST(PairEncoding, RealVocabTypesAndTruncationOfTheLongerSide) {
  ERL_FT_REQUIRE_SHARED();
  const BertTokenizer tok = BertTokenizer::from_file(ft_testing::shared_path("data/vocab/vocab.txt"), true);
  std::vector<PairExample> ex(2);
  ex[0].a = "小孩咳嗽";
  ex[0].b = "感冒药";
  ex[1].a = "一二三四五六七八九十";
  ex[1].b = "甲乙";
  const auto enc = encode_pairs(ex, tok, 10);
  // [CLS] 小 孩 咳 嗽 [SEP] 感 冒 药 [SEP]: exactly 10
  ASSERT_EQ(enc[0].ids.size(), 10u);
  EXPECT_EQ(enc[0].ids.front(), tok.vocab().cls_id());
  EXPECT_EQ(enc[0].ids[5], tok.vocab().sep_id());
  EXPECT_EQ(enc[0].ids.back(), tok.vocab().sep_id());
  EXPECT_EQ(enc[0].types, (std::vector<int32_t>{0, 0, 0, 0, 0, 0, 1, 1, 1, 1}));
  EXPECT_EQ(enc[0].ids[1], tok.vocab().find("小"));
  // 10 + 2 tokens into a budget of 7: only the longer side (a) is cut, from its end.
  ASSERT_EQ(enc[1].ids.size(), 10u);
  EXPECT_EQ(enc[1].ids[5], tok.vocab().find("五"));
  EXPECT_EQ(enc[1].ids[6], tok.vocab().sep_id());
  EXPECT_EQ(enc[1].ids[7], tok.vocab().find("甲"));
  EXPECT_EQ(enc[1].types, (std::vector<int32_t>{0, 0, 0, 0, 0, 0, 0, 1, 1, 1}));
}

TEST(PairReader, RealQbqtcFiles) {
  ERL_FT_REQUIRE_SHARED();
  const PairFile dev = read_pair_file(ft_testing::shared_path("data/qbqtc/dev.json"), PairReaderOptions{});
  EXPECT_EQ(dev.examples.size(), 20000u);
  EXPECT_EQ(dev.label_counts, (std::vector<int64_t>{4894, 12592, 2514}));
  const PairFile test = read_pair_file(ft_testing::shared_path("data/qbqtc/test_public.json"), PairReaderOptions{});
  EXPECT_EQ(test.label_counts, (std::vector<int64_t>{1209, 3159, 632}));
  int64_t removed = 0;
  const auto pool = remove_pairs(dev.examples, test.examples, &removed);
  // README: 1,154 distinct shared pairs; dev's duplicates among them are removed too.
  EXPECT_GE(removed, 1154);
  EXPECT_LE(removed, 1154 + 56);
  PairReaderOptions pre;
  pre.fields.label = "relevant";
  const PairFile ptrain = read_pair_file(ft_testing::shared_path("data/qbqtc/prerelease/train.json"), pre);
  EXPECT_EQ(ptrain.label_counts, (std::vector<int64_t>{6420, 5903, 2677}));
  PairReaderOptions unl;
  unl.labels_required = false;
  EXPECT_EQ(read_pair_file(ft_testing::shared_path("data/qbqtc/test.json"), unl).examples.size(), 10000u);
}

}  // namespace
}  // namespace erlangshen::data
