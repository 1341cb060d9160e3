// Strict config loading: unknown keys, wrong types, out-of-range values and cross-field rules fail with
// the file and key named; overrides apply after the file.
#include <gtest/gtest.h>

#include <unistd.h>

#include <fstream>

#include "runtime/check.h"
#include "runtime/config.h"

namespace erlangshen {
namespace {

std::string write_yaml(const std::string& text) {
  static int counter = 0;
  std::string path = "/tmp/erlangshen-config-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + ".yaml";
  std::ofstream(path) << text;
  return path;
}

std::string error_of(const std::string& yaml, const std::vector<std::string>& overrides = {}) {
  try {
    load_config(write_yaml(yaml), overrides);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Config, LoadsSectionsAndOverrides) {
  Config c = load_config(write_yaml("model:\n  hidden: 128\n  heads: 2\ntrain:\n  lr: 0.01\n  decay: cosine\n"),
                         {"train.lr=0.5", "data.lexicons=[a.txt, b.txt]", "model.activation=gelu"});
  EXPECT_EQ(c.model.hidden, 128);
  EXPECT_EQ(c.model.heads, 2);
  EXPECT_DOUBLE_EQ(c.train.lr, 0.5);
  EXPECT_EQ(c.train.decay, "cosine");
  EXPECT_EQ(c.data.lexicons, (std::vector<std::string>{"a.txt", "b.txt"}));
  EXPECT_EQ(c.model.activation, Activation::GeluExact);
}

TEST(Config, UnknownKeyNamesFileAndKeyWithSuggestion) {
  std::string e = error_of("model:\n  hiden: 128\n");
  EXPECT_NE(e.find(".yaml: key 'model.hiden' is not a known configuration key"), std::string::npos) << e;
  EXPECT_NE(e.find("did you mean 'model.hidden'"), std::string::npos) << e;
  EXPECT_NE(error_of("", {"train.lrr=1"}).find("command line: key 'train.lrr'"), std::string::npos);
}

TEST(Config, WrongTypeAndRange) {
  EXPECT_NE(error_of("train:\n  steps: many\n").find("key 'train.steps': expected an integer, got 'many'"),
            std::string::npos);
  EXPECT_NE(error_of("train:\n  steps: 1.5\n").find("expected an integer"), std::string::npos);
  EXPECT_NE(error_of("train:\n  dropout: 1.5\n").find("key 'train.dropout': value 1.5 is out of range"),
            std::string::npos);
  EXPECT_NE(error_of("train:\n  decay: step\n").find("'step' is not one of: linear, cosine, constant"),
            std::string::npos);
  EXPECT_NE(error_of("model: 3\n").find("key 'model' is a section: expected a map"), std::string::npos);
  EXPECT_TRUE(load_config(write_yaml(""), {}).train.overlap_optimizer);  // on unless turned off
  EXPECT_FALSE(load_config(write_yaml("train:\n  overlap_optimizer: false\n"), {}).train.overlap_optimizer);
  EXPECT_NE(error_of("", {"train.overlap_optimizer=sometimes"}).find("key 'train.overlap_optimizer'"),
            std::string::npos);
  EXPECT_FALSE(load_config(write_yaml(""), {}).train.fused_attention_forward);  // off until timed on a GPU
  EXPECT_TRUE(load_config(write_yaml(""), {"train.fused_attention_forward=true"}).train.fused_attention_forward);
  EXPECT_NE(error_of("", {"train.fused_attention_forward=1x"}).find("key 'train.fused_attention_forward'"),
            std::string::npos);
  EXPECT_FALSE(load_config(write_yaml(""), {}).train.fused_attention_backward);  // off until timed on a GPU
  EXPECT_TRUE(load_config(write_yaml("train:\n  fused_attention_backward: true\n"), {}).train.fused_attention_backward);
}

TEST(Config, CrossFieldRules) {
  EXPECT_NE(error_of("model:\n  hidden: 100\n  heads: 3\n").find("model.heads (3) must divide model.hidden (100)"),
            std::string::npos);
  EXPECT_NE(error_of("model:\n  heads: 4\nparallel:\n  tp: 3\n").find("parallel.tp (3) must divide model.heads"),
            std::string::npos);
  EXPECT_NE(error_of("train:\n  seq_len: 1024\n").find("exceeds model.max_positions"), std::string::npos);
  EXPECT_EQ(error_of("", {"train.activations=bf16", "model.activation=gelu"}), "");  // any GeLU, both backends
  EXPECT_EQ(error_of("", {"train.residual=bf16"}), "");
  EXPECT_NE(error_of("", {"train.residual=fp16"}).find("'fp16' is not one of: fp32, bf16"), std::string::npos);
  EXPECT_NE(error_of("train:\n  activations: fp16\n").find("'fp16' is not one of: fp32, bf16"), std::string::npos);
}

TEST(Config, InvalidYamlNamesLine) {
  std::string e = error_of("model:\n  hidden: [1, 2\n");
  EXPECT_NE(e.find("invalid YAML"), std::string::npos) << e;
}

TEST(Config, MissingFile) {
  try {
    load_config("/nonexistent/x.yaml", {});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/x.yaml: cannot open config file"), std::string::npos);
  }
}

TEST(Config, ShippedConfigsLoad) {
  for (const char* name : {"tiny", "bert-base", "erlangshen-1.3b", "erlangshen-3.9b"}) {
    const std::string path = std::string(ERLANGSHEN_SOURCE_DIR) + "/configs/" + name + ".yaml";
    EXPECT_NO_THROW(load_config(path, {})) << path;
  }
}

}  // namespace
}  // namespace erlangshen
