// End to end on CPU through the `erlangshen` binary: pretrain a very small MegatronBERT briefly (synthetic
// tokens; the point is the checkpoint plumbing), split QBQTC per the recipe, fine-tune from that checkpoint with
// PCL, and check that the selected model beats the majority-class baseline on test_public macro-F1; then
// `evaluate --output` and `predict` on the saved model. Skips without ../shared/data.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "tests/finetune/finetune_test_util.h"

namespace erlangshen {
namespace {

using ft_testing::ScratchDir;

const std::string kBinary = std::string(ERLANGSHEN_BINARY_DIR) + "/launch/erlangshen";
// A model small enough for CI's 2 cores: h64, 2 layers, 2 heads.
const std::string kModel = " model.hidden=64 model.layers=2 model.heads=2 model.ffn=256 train.threads=1";

int run(const std::string& args, const std::string& log) {
  const std::string cmd = "cd " ERLANGSHEN_SOURCE_DIR " && " + kBinary + " " + args + " > " + log + " 2>&1";
  const int rc = std::system(cmd.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

nlohmann::json read_json(const std::string& path) { return nlohmann::json::parse(std::ifstream(path)); }

TEST(FinetuneEndToEnd, PretrainedTinyModelBeatsMajorityBaselineOnTestPublic) {
  ERL_FT_REQUIRE_SHARED();
  ASSERT_TRUE(std::filesystem::exists(kBinary)) << kBinary;
  ScratchDir dir("finetune_e2e");
  const std::string pre = dir.file("pretrain"), split = dir.file("split"), ft = dir.file("ft");

  ASSERT_EQ(run("pretrain --config configs/tiny.yaml" + kModel +
                    " train.steps=10 train.warmup_steps=2 train.micro_batch=8 train.seq_len=64 log.every=5"
                    " checkpoint.dir=" + pre,
                dir.file("pretrain.log")),
            0)
      << slurp(dir.file("pretrain.log"));
  ASSERT_EQ(run("qbqtc-split --data-dir " ERLANGSHEN_SHARED_DIR "/data/qbqtc --out " + split, dir.file("split.log")), 0)
      << slurp(dir.file("split.log"));
  const nlohmann::json s = read_json(split + "/split.json");
  EXPECT_EQ(s["train"]["pairs"].get<int>() + s["heldout"]["pairs"].get<int>() + s["removed_test_public_overlap"].get<int>(),
            20000);

  // 8,000 training pairs (250 steps of 32), dev evaluated every 50 steps, best kept. One thread: OpenMP
  // threads spin badly when CI runs other jobs beside this one.
  const std::string common = kModel + " data.vocab=" ERLANGSHEN_SHARED_DIR "/data/vocab/vocab.txt data.test=" +
                             ERLANGSHEN_SHARED_DIR "/data/qbqtc/test_public.json data.train=" + split +
                             "/train.json data.dev=" + split + "/heldout.json checkpoint.dir=" + ft +
                             " log.metrics=" + ft + "/metrics.jsonl";
  ASSERT_EQ(run("finetune --config configs/finetune-qbqtc-pcl.yaml" + common + " checkpoint.init=" + pre +
                    " train.lr=1e-3 train.warmup_steps=20 train.stop_at=250 train.eval_every=50 log.every=50"
                    " --output " + dir.file("result.json"),
                dir.file("finetune.log")),
            0)
      << slurp(dir.file("finetune.log"));
  const std::string ft_log = slurp(dir.file("finetune.log"));
  EXPECT_NE(ft_log.find("checkpoint.init: loaded the encoder from"), std::string::npos) << ft_log;

  // Majority class ("1", 3,159 of 5,000): macro-F1 = (2 * 0.6318 / 1.6318) / 3 = 0.2582.
  const double majority = 2.0 * 0.6318 / 1.6318 / 3.0;
  const nlohmann::json result = read_json(dir.file("result.json"));
  const double f1 = result["test"]["macro_f1"].get<double>();
  std::printf("test_public macro-F1 %.4f, accuracy %.4f (majority baseline %.4f)\n", f1,
              result["test"]["accuracy"].get<double>(), majority);
  EXPECT_GT(f1, majority + 0.02);

  // Metrics JSONL: eval records carry eval_acc / eval_macro_f1.
  std::ifstream metrics(ft + "/metrics.jsonl");
  int evals = 0;
  for (std::string line; std::getline(metrics, line);) evals += nlohmann::json::parse(line).contains("eval_macro_f1");
  EXPECT_EQ(evals, 5);

  // evaluate --output reproduces the test metrics of the saved best model.
  ASSERT_EQ(run("evaluate --config configs/finetune-qbqtc-pcl.yaml" + common + " --output " + dir.file("eval.json"),
                dir.file("evaluate.log")),
            0)
      << slurp(dir.file("evaluate.log"));
  const nlohmann::json ev = read_json(dir.file("eval.json"));
  for (const char* key : {"accuracy", "macro_f1", "per_class", "confusion"}) EXPECT_TRUE(ev.contains(key)) << key;
  EXPECT_NEAR(ev["macro_f1"].get<double>(), f1, 1e-9);
  EXPECT_EQ(ev["confusion"].size(), 3u);

  // predict writes one {"id", "label"} line per input line, in order.
  const std::string unlabeled = dir.write("test_head.json",
                                          "{\"id\": 11, \"query\": \"小孩咳嗽\", \"title\": \"小孩感冒咳嗽怎么办\"}\n"
                                          "{\"id\": 12, \"query\": \"昆明公积金\", \"title\": \"速度与激情\"}\n");
  ASSERT_EQ(run("predict --config configs/finetune-qbqtc-pcl.yaml" + common + " --data " + unlabeled + " --output " +
                    dir.file("pred.json"),
                dir.file("predict.log")),
            0)
      << slurp(dir.file("predict.log"));
  std::ifstream pred(dir.file("pred.json"));
  std::string l1, l2, l3;
  std::getline(pred, l1);
  std::getline(pred, l2);
  EXPECT_FALSE(std::getline(pred, l3));
  const nlohmann::json p1 = nlohmann::json::parse(l1), p2 = nlohmann::json::parse(l2);
  EXPECT_EQ(p1["id"], 11);
  EXPECT_EQ(p2["id"], 12);
  EXPECT_TRUE(p1["label"].is_string());
  const std::string lab = p1["label"].get<std::string>();
  EXPECT_TRUE(lab == "0" || lab == "1" || lab == "2") << lab;
}

TEST(FinetuneEndToEnd, ClearErrorsForBadInputs) {
  ERL_FT_REQUIRE_SHARED();
  ScratchDir dir("finetune_e2e_errors");
  const std::string bad = dir.write("bad.json",
                                    "{\"query\": \"q\", \"title\": \"t\", \"label\": \"1\"}\n{\"query\": \"q\"}\n");
  EXPECT_EQ(run("finetune --config configs/finetune-qbqtc-ce.yaml" + kModel + " data.train=" + bad +
                    " data.vocab=" ERLANGSHEN_SHARED_DIR "/data/vocab/vocab.txt",
                dir.file("log")),
            1);
  EXPECT_NE(slurp(dir.file("log")).find(bad + ":2: missing field 'title'"), std::string::npos) << slurp(dir.file("log"));
  const std::string good = dir.write("good.json", "{\"query\": \"q\", \"title\": \"t\", \"label\": \"1\"}\n");
  EXPECT_EQ(run("finetune --config configs/finetune-qbqtc-ce.yaml" + kModel + " data.train=" + good +
                    " data.dev= data.test= data.vocab=" ERLANGSHEN_SHARED_DIR "/data/vocab/vocab.txt checkpoint.init=" +
                    dir.file("nope"),
                dir.file("log2")),
            1);
  EXPECT_NE(slurp(dir.file("log2")).find(dir.file("nope") + ": no such file"), std::string::npos) << slurp(dir.file("log2"));
}

}  // namespace
}  // namespace erlangshen
