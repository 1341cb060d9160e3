// preprocess -> HDF5 shards: read back independently with python3-h5py (datasets, dtypes, offsets, round trip to
// the source text, word_start vs jieba), identical output for any thread count, and bad input handling.
#include <gtest/gtest.h>

#include <filesystem>

#include "data_pipeline/preprocess.h"
#include "data_pipeline/shard_reader.h"
#include "runtime/check.h"
#include "tests/data_pipeline/test_util.h"

namespace erlangshen::data {
namespace {

using namespace testing;

TextPipelineOptions shared_pipeline() {
  TextPipelineOptions t;
  t.vocab = shared_path("data/vocab/vocab.txt");
  t.dict = shared_path("data/lexicon/jieba_dict.txt");
  t.lexicons = {shared_path("data/lexicon/thuocl/THUOCL_diming.txt"),
                shared_path("data/lexicon/thuocl/THUOCL_lishimingren.txt")};
  return t;
}

std::string file_bytes(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

TEST(Shards, ReadBackWithH5pyMatchesSourceText) {
  ERL_REQUIRE_SHARED();
  if (!python_has("h5py") || !python_has("jieba")) GTEST_SKIP() << "python3-h5py / python3-jieba missing";
  TempDir tmp("shards");
  TextPipeline pipeline(shared_pipeline());
  PreprocessOptions p;
  p.inputs = {shared_path("data/corpus/zhwiki_sample.txt"), shared_path("data/corpus/fewclue_csl_texts.txt")};
  p.out_dir = tmp.file("out");
  p.threads = 2;
  p.shard_tokens = 150000;
  p.progress = false;
  PreprocessReport rep = run_preprocess(pipeline, p);
  ASSERT_GE(rep.shards.size(), 3u);
  EXPECT_GT(rep.stats.span_count[1], 0);
  EXPECT_GT(rep.stats.span_count[2], 0);

  std::string args = shared_path("data/vocab/vocab.txt") + " " + shared_path("data/lexicon/jieba_dict.txt") + " " +
                     tmp.file("out") + " " + p.inputs[0] + " " + p.inputs[1];
  write_file(tmp.file("empty"), "");
  ASSERT_EQ(run_python("check_shards.py", args, tmp.file("empty"), tmp.file("check.json")), 0);
  auto j = nlohmann::json::parse(file_bytes(tmp.file("check.json")));
  std::cout << "h5py check: " << j.dump() << "\n";
  EXPECT_TRUE(j["errors"].empty()) << j["errors"].dump();
  EXPECT_EQ(j["shards"].size(), rep.shards.size());
  int64_t tokens = 0, docs = 0;
  for (auto& s : j["shards"]) {
    tokens += s["tokens"].get<int64_t>();
    docs += s["docs"].get<int64_t>();
    EXPECT_EQ(s["vocab_sha256"], pipeline.tokenizer().vocab_sha256());
  }
  EXPECT_EQ(tokens, rep.stats.tokens);
  EXPECT_EQ(docs, rep.stats.documents);
  EXPECT_GT(j["docs_checked"].get<int>(), 100);
  EXPECT_EQ(j["ids_equal"], j["docs_checked"]);
  EXPECT_EQ(j["text_equal"], j["docs_checked"]);
  EXPECT_GT(j["word_start_lines"].get<int>(), 20);
  EXPECT_EQ(j["word_start_equal"], j["word_start_lines"]);
}

TEST(Shards, OutputIsIdenticalForAnyThreadCount) {
  ERL_REQUIRE_SHARED();
  TempDir tmp("threads");
  TextPipeline pipeline(shared_pipeline());
  std::vector<std::vector<std::string>> outputs;
  for (int threads : {1, 3}) {
    PreprocessOptions p;
    p.inputs = {shared_path("data/corpus/zhwiki_sample.txt")};
    p.out_dir = tmp.file("t" + std::to_string(threads));
    p.threads = threads;
    p.shard_tokens = 100000;
    p.progress = false;
    auto rep = run_preprocess(pipeline, p);
    std::vector<std::string> bytes;
    for (auto& s : rep.shards) bytes.push_back(file_bytes(s));
    outputs.push_back(bytes);
  }
  ASSERT_EQ(outputs[0].size(), outputs[1].size());
  for (size_t i = 0; i < outputs[0].size(); ++i) EXPECT_TRUE(outputs[0][i] == outputs[1][i]) << "shard " << i;
}

// A tiny self-contained setup for bad-input tests (no ../shared needed).
struct Tiny {
  TempDir tmp{"tiny"};
  TextPipelineOptions opt;
  Tiny() {
    write_file(tmp.file("vocab.txt"), "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n北\n京\n是\n首\n都\n。\n上\n海\n");
    write_file(tmp.file("dict.txt"), "北京 100 ns\n首都 50 n\n上海 80 ns\n是 200 v\n");
    opt.vocab = tmp.file("vocab.txt");
    opt.dict = tmp.file("dict.txt");
  }
};

TEST(Shards, BadInputIsCountedAndReported) {
  Tiny t;
  std::string text = "北京是首都。上海。\n\n\n";          // doc 1 (two sentences)
  text += "北京\xff\xfe是首都。\n北\xc3(京。\n\n";        // doc 2: two lines with invalid UTF-8
  text += "   \n\t\n";                                      // blank lines only
  text += "上海" + std::string(300, 'x') + "。\n\n";       // doc 3: an over-long line (skipped -> empty doc)
  text += "。。。\n\n";                                     // doc 4: punctuation only
  text += "上海是首都\n";                                    // doc 5: one sentence, no final newline
  write_file(t.tmp.file("in.txt"), text);
  TextPipeline pipeline(t.opt);
  PreprocessOptions p;
  p.inputs = {t.tmp.file("in.txt")};
  p.out_dir = t.tmp.file("out");
  p.max_line_bytes = 200;
  p.progress = false;
  PreprocessReport r = run_preprocess(pipeline, p);
  EXPECT_EQ(r.stats.invalid_utf8, 3);
  EXPECT_EQ(r.stats.invalid_utf8_lines, 2);
  EXPECT_EQ(r.stats.long_lines, 1);
  EXPECT_EQ(r.stats.documents, 4);  // docs 1, 2, 4 (punctuation tokens), 5
  EXPECT_EQ(r.stats.one_sentence_documents, 2);
  std::string all;
  for (auto& w : r.warnings) all += w + "\n";
  EXPECT_NE(all.find("in.txt:4: 2 invalid UTF-8"), std::string::npos) << all;
  EXPECT_NE(all.find("in.txt:5: 1 invalid UTF-8"), std::string::npos) << all;
  EXPECT_NE(all.find("in.txt:9: line longer than 200 bytes"), std::string::npos) << all;
  ShardReader reader(r.shards.at(0), pipeline.tokenizer().vocab_sha256());
  EXPECT_EQ(reader.num_docs(), 4);
}

// The writer buffers each dataset and flushes every 2^20 values; a flush used to drop the partial (K, 3) span
// row at the boundary, shifting every later span by one column (found with the THUOCL lexicons on the corpus).
TEST(Shards, SpansStayAlignedAcrossWriterFlushes) {
  Tiny t;
  t.opt.lexicons = {t.tmp.file("entities.txt")};
  write_file(t.tmp.file("entities.txt"), "北京\n上海\n");
  std::string doc;
  for (int i = 0; i < 200; ++i) doc += "北京是首都。上海是首都。";
  std::string text;
  for (int d = 0; d < 1000; ++d) text += doc + "\n\n";  // 400k spans: 1.2M values, past one flush
  write_file(t.tmp.file("in.txt"), text);
  TextPipeline pipeline(t.opt);
  PreprocessOptions p;
  p.inputs = {t.tmp.file("in.txt")};
  p.out_dir = t.tmp.file("out");
  p.shard_tokens = int64_t{1} << 30;
  p.progress = false;
  PreprocessReport r = run_preprocess(pipeline, p);
  ASSERT_EQ(r.shards.size(), 1u);
  ShardReader reader(r.shards.at(0), pipeline.tokenizer().vocab_sha256());
  ASSERT_EQ(reader.num_spans(), 400000);
  std::vector<int32_t> spans(static_cast<size_t>(reader.num_spans()) * 3);
  reader.read_spans(0, reader.num_spans(), spans.data());
  for (int64_t k = 0; k < reader.num_spans(); ++k) {
    const int32_t* s = &spans[static_cast<size_t>(k) * 3];
    ASSERT_EQ(s[1] - s[0], 2) << "span " << k;  // 北京 / 上海: two tokens
    ASSERT_EQ(s[2], 1) << "span " << k;          // entity
    if (k > 0) ASSERT_GT(s[0], spans[static_cast<size_t>(k - 1) * 3]) << "span " << k;
  }
}

TEST(Shards, CorruptTruncatedAndMismatchedShardsAreRefused) {
  Tiny t;
  write_file(t.tmp.file("in.txt"), "北京是首都。上海是首都。\n\n上海。北京。\n");
  TextPipeline pipeline(t.opt);
  PreprocessOptions p;
  p.inputs = {t.tmp.file("in.txt")};
  p.out_dir = t.tmp.file("out");
  p.progress = false;
  std::string shard = run_preprocess(pipeline, p).shards.at(0);
  const std::string sha = pipeline.tokenizer().vocab_sha256();
  EXPECT_NO_THROW(ShardReader(shard, sha));

  auto expect_error = [](const std::string& path, const std::string& sha, std::vector<std::string> needles) {
    try {
      ShardReader r(path, sha);
      ADD_FAILURE() << "no error for " << path;
    } catch (const Error& e) {
      for (auto& n : needles) EXPECT_NE(std::string(e.what()).find(n), std::string::npos) << e.what();
    }
  };
  // vocabulary mismatch: both hashes in the message
  const std::string other(64, 'a');
  expect_error(shard, other, {shard, sha, other});
  // truncated file
  std::string bytes = file_bytes(shard);
  write_file(t.tmp.file("trunc.h5"), bytes.substr(0, bytes.size() / 2));
  expect_error(t.tmp.file("trunc.h5"), sha, {"trunc.h5"});
  // garbage
  write_file(t.tmp.file("garbage.h5"), std::string(5000, 'z'));
  expect_error(t.tmp.file("garbage.h5"), sha, {"garbage.h5", "not an HDF5 file"});
  // a corrupted byte run in the middle of the data
  std::string bad = bytes;
  for (size_t i = bytes.size() / 3; i < bytes.size() / 3 + 64 && i < bad.size(); ++i) bad[i] = '\x5a';
  write_file(t.tmp.file("flip.h5"), bad);
  try {
    ShardReader r(t.tmp.file("flip.h5"), sha);
    std::vector<int32_t> tok(static_cast<size_t>(r.num_tokens()));
    std::vector<uint8_t> ws(tok.size());
    r.read_tokens(0, r.num_tokens(), tok.data(), ws.data());
    r.span_begins();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("flip.h5"), std::string::npos) << e.what();
  }
  expect_error(t.tmp.file("missing.h5"), sha, {"missing.h5", "does not exist"});
}

}  // namespace
}  // namespace erlangshen::data
