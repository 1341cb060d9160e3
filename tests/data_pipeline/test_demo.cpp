// The embedded demo data (examples/demo): the committed vocabulary is what build-vocab makes from the corpus,
// the corpus is what make_corpus.py writes, and it preprocesses in well under a second into shards the loader
// can train from.
#include <gtest/gtest.h>

#include "data_pipeline/preprocess.h"
#include "data_pipeline/pretrain_loader.h"
#include "data_pipeline/vocab_builder.h"
#include "runtime/timer.h"
#include "tests/data_pipeline/test_util.h"

namespace erlangshen {
namespace {

using namespace data;
using namespace data::testing;

std::string demo(const std::string& f) { return source_path("examples/demo/" + f); }

TEST(Demo, CommittedVocabIsBuildVocabOfTheCorpus) {
  VocabBuildOptions o;
  o.inputs = {demo("corpus.txt")};
  o.unused = 0;
  std::vector<std::string> built = build_vocab(o);
  EXPECT_EQ(built, read_lines(demo("vocab.txt")));
}

TEST(Demo, CorpusIsWhatTheGeneratorWrites) {
  TempDir tmp("demo_gen");
  std::string cmd = std::string(ERLANGSHEN_PYTHON) + " " + demo("make_corpus.py") + " " + tmp.path().string();
  if (std::system(cmd.c_str()) != 0) GTEST_SKIP() << "python unavailable";
  for (const char* f : {"corpus.txt", "dict.txt", "entities.txt", "events.txt"})
    EXPECT_EQ(read_lines(tmp.file(f)), read_lines(demo(f))) << f;
}

TEST(Demo, PreprocessesFastAndFeedsTheLoader) {
  TempDir tmp("demo");
  TextPipelineOptions t;
  t.vocab = demo("vocab.txt");
  t.dict = demo("dict.txt");
  t.lexicons = {"entity:" + demo("entities.txt"), "event:" + demo("events.txt")};
  Stopwatch w;
  TextPipeline pipeline(t);
  PreprocessOptions p;
  p.inputs = {demo("corpus.txt")};
  p.out_dir = tmp.file("shards");
  p.progress = false;
  PreprocessReport r = run_preprocess(pipeline, p);
  EXPECT_LT(w.seconds(), 5.0);
  EXPECT_EQ(r.stats.documents, 700);
  EXPECT_EQ(r.stats.unk_tokens, 0);
  EXPECT_GT(r.stats.span_tokens[1], r.stats.tokens / 20);
  EXPECT_GT(r.stats.span_count[2], 100);
  LoaderOptions o;
  o.shards = {tmp.file("shards")};
  o.vocab_path = demo("vocab.txt");
  o.seq_len = 64;
  o.micro_batch = 8;
  PretrainLoader loader(o);
  EXPECT_GT(loader.samples_per_epoch(), 700);
  auto step = loader.next_step();
  ASSERT_EQ(step.size(), 1u);
  EXPECT_EQ(step[0].input_ids.size(), 8u * 64u);
  EXPECT_FALSE(step[0].mlm_positions.empty());
}

}  // namespace
}  // namespace erlangshen
