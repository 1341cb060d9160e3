// HF export / import / fill-mask:
//   - the exported folder reproduces our forward's MLM and SOP logits within 1e-4 in PyTorch (an independent
//     implementation, and HF transformers when installed) — tests/checkpoint/hf_parity.py;
//   - importing the exported folder gives back the checkpoint's weights bit for bit (vocab padding rows inert),
//     and exporting the import again gives identical tensors;
//   - fill-mask prints the MLM head's top-k.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "checkpoint/reader.h"
#include "checkpoint/safetensors.h"
#include "ckpt_test_util.h"
#include "model/megatron_bert.h"

namespace erlangshen::ckpt {
namespace {

using namespace ckpt_testing;
namespace fs = std::filesystem;

constexpr int kVocab = 1000;

// [PAD] [unused1..99] [UNK] [CLS] [SEP] [MASK] t104 t105 ... (ids as in the Chinese BERT vocab).
std::string write_vocab(const ScratchDir& dir) {
  const std::string path = dir.file("vocab.txt");
  std::ofstream f(path);
  f << "[PAD]\n";
  for (int i = 1; i < 100; ++i) f << "[unused" << i << "]\n";
  f << "[UNK]\n[CLS]\n[SEP]\n[MASK]\n";
  for (int i = 104; i < kVocab; ++i) f << "t" << i << "\n";
  return path;
}

std::string python() {
  const char* env = std::getenv("ERLANGSHEN_TEST_PYTHON");
  return env && *env ? env : ERLANGSHEN_PYTHON;
}

class HfExport : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new ScratchDir("hf");
    vocab_ = write_vocab(*dir_);
    ckpt_ = dir_->file("ckpt");
    const auto args = concat({"pretrain"}, concat(small_model_args(), {"model.vocab_size=" + std::to_string(kVocab),
                                                                       "checkpoint.dir=" + ckpt_, "data.vocab=" + vocab_,
                                                                       "train.stop_at=3", "train.lr=0.01"}));
    ASSERT_EQ(run_erlangshen(args, dir_->file("train.log")), 0) << read_file(dir_->file("train.log"));
    ASSERT_EQ(run_erlangshen({"export", ckpt_, dir_->file("hf")}, dir_->file("export.log")), 0)
        << read_file(dir_->file("export.log"));
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static ScratchDir* dir_;
  static std::string vocab_, ckpt_;
};
ScratchDir* HfExport::dir_ = nullptr;
std::string HfExport::vocab_, HfExport::ckpt_;

TEST_F(HfExport, FolderLayout) {
  for (const char* f : {"model.safetensors", "config.json", "vocab.txt", "tokenizer_config.json"})
    EXPECT_TRUE(fs::exists(dir_->file("hf") + "/" + f)) << f;
  const auto cfg = nlohmann::json::parse(read_file(dir_->file("hf/config.json")));
  EXPECT_EQ(cfg.at("model_type"), "megatron-bert");
  EXPECT_EQ(cfg.at("vocab_size"), kVocab);
  EXPECT_EQ(cfg.at("hidden_act"), "gelu_new");
  SafetensorsReader st(dir_->file("hf/model.safetensors"));
  EXPECT_EQ(st.at("bert.embeddings.word_embeddings.weight").shape, (std::vector<int64_t>{kVocab, 64}));
  EXPECT_EQ(st.at("cls.predictions.decoder.weight").shape, (std::vector<int64_t>{kVocab, 64}));
  EXPECT_EQ(st.at("cls.predictions.bias").shape, (std::vector<int64_t>{kVocab}));
  EXPECT_NE(st.find("bert.encoder.layer.1.attention.self.query.weight"), nullptr);
  EXPECT_NE(st.find("cls.seq_relationship.weight"), nullptr);
}

TEST_F(HfExport, PyTorchReproducesOurLogits) {
  if (std::system((python() + " -c 'import torch' 2>/dev/null").c_str()) != 0)
    GTEST_SKIP() << python() << " has no torch (scripts/setup.sh installs python3-torch)";
  CheckpointReader reader(ckpt_);
  const ModelConfig cfg = reader.manifest().model;
  SelfCommunicator tp("tp");
  MegatronBert<float> model(cfg, ModelHeads::Pretraining, tp, 0.0, 0.0);
  reader.load_params(model.table(), model.params());
  // SOP logits: the pooler + a 2-way head; a classification model with the SOP weights computes exactly that.
  ModelConfig cls_cfg = cfg;
  cls_cfg.num_classes = 2;
  MegatronBert<float> cls(cls_cfg, ModelHeads::Classification, tp, 0.0, 0.0);
  reader.load_params(cls.table(), cls.params(), true);
  const auto w = reader.read_global("cls.seq_relationship.weight"), b = reader.read_global("cls.seq_relationship.bias");
  std::memcpy(cls.param("classifier.weight"), w.data(), w.size() * sizeof(float));
  std::memcpy(cls.param("classifier.bias"), b.data(), b.size() * sizeof(float));

  const int B = 2, T = 12;
  std::vector<int32_t> ids(B * T), types(B * T);
  std::vector<uint8_t> valid(B * T, 1);
  uint32_t x = 12345;
  for (int i = 0; i < B * T; ++i) {
    x = x * 1664525u + 1013904223u;
    ids[i] = 104 + static_cast<int32_t>((x >> 8) % (kVocab - 104));
    types[i] = (i % T) >= T / 2;
  }
  ids[0] = ids[T] = 101;
  for (int t = T - 4; t < T; ++t) valid[T + t] = 0, ids[T + t] = 0, types[T + t] = 0;  // padding
  std::vector<int32_t> positions;
  for (int i = 0; i < B * T; ++i)
    if (valid[i]) positions.push_back(i);
  const int M = static_cast<int>(positions.size());
  model.reserve(B, T);
  std::vector<float> logits(static_cast<size_t>(M) * model.vocab_local());
  const EncoderInputs in{B, T, ids.data(), types.data(), valid.data()};
  model.mlm_logits(in, positions.data(), M, logits.data());
  cls.reserve(B, T);
  std::vector<float> sop(B * 2);
  cls.classify_forward(in, RngContext{}, sop.data());

  nlohmann::json mlm = nlohmann::json::array();
  for (int m = 0; m < M; ++m)
    mlm.push_back(std::vector<float>(logits.begin() + static_cast<size_t>(m) * model.vocab_local(),
                                     logits.begin() + static_cast<size_t>(m) * model.vocab_local() + kVocab));
  const nlohmann::json c = {{"B", B}, {"T", T}, {"ids", ids}, {"types", types}, {"valid", valid},
                            {"mlm_positions", positions}, {"mlm_logits", mlm}, {"sop_logits", sop}};
  std::ofstream(dir_->file("case.json")) << c.dump();
  const std::string cmd = python() + " " + source("tests/checkpoint/hf_parity.py") + " --model " + dir_->file("hf") +
                          " --case " + dir_->file("case.json") + " > " + dir_->file("parity.log") + " 2>&1";
  const int rc = std::system(cmd.c_str());
  const std::string log = read_file(dir_->file("parity.log"));
  std::printf("%s", log.c_str());
  EXPECT_EQ(rc, 0) << log;
  EXPECT_NE(log.find("independent torch (float64)"), std::string::npos) << log;
}

TEST_F(HfExport, ImportGivesBackIdenticalWeights) {
  const std::string imported = dir_->file("imported");
  ASSERT_EQ(run_erlangshen({"import", dir_->file("hf"), imported}, dir_->file("import.log")), 0)
      << read_file(dir_->file("import.log"));
  CheckpointReader a(ckpt_), b(imported);
  EXPECT_EQ(b.manifest().step, 0);
  EXPECT_FALSE(b.manifest().has_optimizer());
  EXPECT_EQ(b.manifest().vocab_sha256, a.manifest().vocab_sha256);
  EXPECT_EQ(b.manifest().model.vocab_size, kVocab);
  const int64_t padded = a.manifest().model.padded_vocab(1);
  for (const auto& r : a.manifest().tensors) {
    if (r.kind != TensorKind::Param || r.tp_rank != 0) continue;
    const auto x = a.read_global(r.name), y = b.read_global(r.name);
    ASSERT_EQ(x.size(), y.size()) << r.name;
    if (r.name == "bert.embeddings.word_embeddings.weight" || r.name == "cls.predictions.bias") {
      // Real rows identical; padding rows (not part of an HF model) come back inert.
      const size_t real = x.size() / padded * kVocab;
      EXPECT_EQ(0, std::memcmp(x.data(), y.data(), real * sizeof(float))) << r.name;
      const float fill = r.name == "cls.predictions.bias" ? kPaddedLogitBias : 0.0f;
      for (size_t i = real; i < y.size(); ++i) ASSERT_EQ(y[i], fill) << r.name << " " << i;
    } else {
      EXPECT_EQ(0, std::memcmp(x.data(), y.data(), x.size() * sizeof(float))) << r.name;
    }
  }
  // Export of the import: the same HF tensors.
  ASSERT_EQ(run_erlangshen({"export", imported, dir_->file("hf2")}, dir_->file("export2.log")), 0);
  SafetensorsReader s1(dir_->file("hf/model.safetensors")), s2(dir_->file("hf2/model.safetensors"));
  ASSERT_EQ(s1.tensors().size(), s2.tensors().size());
  for (const auto& t : s1.tensors()) {
    std::vector<float> u(static_cast<size_t>(t.numel())), v(static_cast<size_t>(t.numel()));
    s1.read_f32(t.name, u.data());
    s2.read_f32(t.name, v.data());
    EXPECT_EQ(0, std::memcmp(u.data(), v.data(), u.size() * sizeof(float))) << t.name;
  }
  EXPECT_EQ(read_file(dir_->file("hf/vocab.txt")), read_file(dir_->file("hf2/vocab.txt")));
}

TEST_F(HfExport, ImportedCheckpointResumesInPretrain) {
  const std::string imported = dir_->file("imported_pretrain");
  ASSERT_EQ(run_erlangshen({"import", dir_->file("hf"), imported}, dir_->file("import3.log")), 0);
  const auto args = concat({"pretrain"}, concat(small_model_args(), {"model.vocab_size=" + std::to_string(kVocab),
                                                                     "checkpoint.dir=" + imported, "data.vocab=" + vocab_,
                                                                     "train.stop_at=2"}));
  ASSERT_EQ(run_erlangshen(args, dir_->file("pretrain3.log")), 0) << read_file(dir_->file("pretrain3.log"));
  const std::string log = read_file(dir_->file("pretrain3.log"));
  EXPECT_NE(log.find("resume: step 0"), std::string::npos) << log;
  EXPECT_TRUE(fs::exists(imported + "/step_00000002/COMPLETE"));
}

TEST_F(HfExport, FillMaskJson) {
  ASSERT_EQ(run_erlangshen({"fill-mask", "--checkpoint", ckpt_, "--json", "--top-k", "4", "t200 t300 [MASK] t400"},
                           dir_->file("fill.log")),
            0)
      << read_file(dir_->file("fill.log"));
  const std::string out = read_file(dir_->file("fill.log"));
  const auto j = nlohmann::json::parse(out.substr(out.find('{')));
  EXPECT_EQ(j.at("tokens"), (std::vector<std::string>{"[CLS]", "t200", "t300", "[MASK]", "t400", "[SEP]"}));
  ASSERT_EQ(j.at("masks").size(), 1u);
  EXPECT_EQ(j.at("masks")[0].at("position"), 3);
  const auto& top = j.at("masks")[0].at("top");
  ASSERT_EQ(top.size(), 4u);
  double last = 2.0;
  for (const auto& t : top) {
    EXPECT_LT(t.at("id").get<int>(), kVocab);
    EXPECT_LE(t.at("prob").get<double>(), last);
    last = t.at("prob").get<double>();
  }
  // Human-readable form.
  ASSERT_EQ(run_erlangshen({"fill-mask", "--checkpoint", ckpt_, "[MASK] t300"}, dir_->file("fill2.log")), 0);
  EXPECT_NE(read_file(dir_->file("fill2.log")).find("[MASK] at 1"), std::string::npos) << read_file(dir_->file("fill2.log"));
}

}  // namespace
}  // namespace erlangshen::ckpt
