// Parity with an independent PyTorch implementation (tests/reference/megatron_bert_reference.py), fp32,
// dropout off: MLM/SOP losses, logits, every parameter gradient, then the loss curve of 10 AdamW steps.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "model/synthetic_batch.h"
#include "model/trainer.h"
#include "test_support.h"

namespace erlangshen {
namespace {

using testing::FixedDataSource;
using testing::small_config;

void write_floats(const std::string& path, const float* data, size_t n) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(n * sizeof(float)));
}

std::vector<float> read_floats(const std::string& path, size_t n) {
  std::vector<float> v(n);
  std::ifstream f(path, std::ios::binary);
  f.read(reinterpret_cast<char*>(v.data()), static_cast<std::streamsize>(n * sizeof(float)));
  EXPECT_TRUE(f.good()) << path;
  return v;
}

// max |a - b| over the tensor relative to max |b| (the reference's scale)
double tensor_rel_error(const float* a, const float* b, size_t n) {
  double diff = 0, scale = 0;
  for (size_t i = 0; i < n; ++i) {
    diff = std::max(diff, std::abs(static_cast<double>(a[i]) - b[i]));
    scale = std::max(scale, std::abs(static_cast<double>(b[i])));
  }
  return scale > 0 ? diff / scale : diff;
}

TEST(ReferenceParity, LossesGradientsAndAdamWCurveMatchPyTorch) {
  if (!testing::python_has("torch")) GTEST_SKIP() << "python3-torch not installed (scripts/setup.sh installs it)";
  Config config = small_config();
  config.train.clip_grad = 1.0;
  const int B = config.train.micro_batch, T = config.train.seq_len;
  PretrainBatch batch = make_synthetic_batch(B, T, config.model.vocab_size, 0.15, 7, 0, 0);
  ASSERT_GT(batch.mlm_positions.size(), 0u);

  SelfCommunicator tp, dp;
  FixedDataSource data({batch});
  Logger quiet(1, 2);  // not rank 0: no progress lines
  PretrainTrainer trainer(config, TrainerGroups{&tp, &dp}, data, quiet);
  auto& model = trainer.model();
  const auto& table = model.table();

  const std::string dir = testing::make_temp_dir("erlangshen-parity");
  ASSERT_FALSE(dir.empty());
  write_floats(dir + "/params.bin", model.params(), model.num_params());
  nlohmann::json meta;
  meta["config"] = {{"hidden", config.model.hidden}, {"layers", config.model.layers}, {"heads", config.model.heads},
                    {"vocab_size", config.model.vocab_size},
                    {"layernorm_eps", config.model.layernorm_eps},
                    {"activation", activation_name(config.model.activation)}};
  for (const auto& e : table.entries())
    meta["tensors"].push_back({{"name", e.spec.name}, {"shape", e.local_shape}, {"offset", e.offset}});
  meta["total"] = model.num_params();
  meta["batch"] = {{"B", B}, {"T", T}, {"input_ids", batch.input_ids}, {"token_types", batch.token_types},
                   {"attention_mask", batch.attention_mask}, {"mlm_positions", batch.mlm_positions},
                   {"mlm_labels", batch.mlm_labels}, {"sop_labels", batch.sop_labels}};
  const auto& t = config.train;
  meta["train"] = {{"lr", t.lr}, {"min_lr", t.min_lr}, {"warmup_steps", t.warmup_steps}, {"steps", t.steps},
                   {"weight_decay", t.weight_decay}, {"beta1", t.beta1}, {"beta2", t.beta2},
                   {"adam_eps", t.adam_eps}, {"clip_grad", t.clip_grad}};
  meta["adam_steps"] = 10;
  std::ofstream(dir + "/meta.json") << meta.dump();

  const std::string cmd = std::string(ERLANGSHEN_PYTHON) + " " + ERLANGSHEN_SOURCE_DIR +
                          "/tests/reference/megatron_bert_reference.py " + dir;
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  nlohmann::json ref = nlohmann::json::parse(std::ifstream(dir + "/result.json"));

  // logits of the masked positions, before any update
  const int M = static_cast<int>(batch.mlm_positions.size());
  std::vector<float> logits(static_cast<size_t>(M) * model.vocab_local());
  EncoderInputs in{B, T, batch.input_ids.data(), batch.token_types.data(), batch.attention_mask.data()};
  model.mlm_logits(in, batch.mlm_positions.data(), M, logits.data());
  std::vector<float> ref_logits = ref["mlm_logits"].get<std::vector<float>>();
  ASSERT_EQ(ref_logits.size(), logits.size());
  EXPECT_LT(tensor_rel_error(logits.data(), ref_logits.data(), logits.size()), 1e-5);

  // step 1: losses and gradients (the trainer leaves the step's raw gradients in grads())
  std::vector<double> losses;
  StepReport r = trainer.train_step();
  losses.push_back(r.loss);
  EXPECT_NEAR(r.mlm_loss, ref["mlm_loss"].get<double>(), 1e-5 * std::abs(ref["mlm_loss"].get<double>()));
  EXPECT_NEAR(r.sop_loss, ref["sop_loss"].get<double>(), 1e-5 * std::abs(ref["sop_loss"].get<double>()));
  // Per tensor: max |ours - ref| <= 1e-5 x max |ref| of that tensor. Tensors whose exact gradient is 0 (the key
  // bias: adding a constant to every score of a softmax row changes nothing) hold only rounding noise, so
  // the scale has a floor of 1e-3 x the largest gradient of the model.
  std::vector<float> ref_grads = read_floats(dir + "/grads.bin", model.num_params());
  double global_scale = 0;
  for (size_t i = 0; i < model.num_params(); ++i) global_scale = std::max(global_scale, std::abs(double(ref_grads[i])));
  for (const auto& e : table.entries()) {
    double diff = 0, scale = 1e-3 * global_scale;
    for (size_t i = 0; i < e.numel; ++i) {
      diff = std::max(diff, std::abs(double(model.grads()[e.offset + i]) - ref_grads[e.offset + i]));
      scale = std::max(scale, std::abs(double(ref_grads[e.offset + i])));
    }
    EXPECT_LT(diff / scale, 1e-5) << e.spec.name;
  }
  // steps 2..10: the loss curve, then the final weights
  for (int s = 2; s <= 10; ++s) losses.push_back(trainer.train_step().loss);
  std::vector<double> ref_losses = ref["losses"].get<std::vector<double>>();
  ASSERT_EQ(ref_losses.size(), losses.size());
  for (size_t i = 0; i < losses.size(); ++i)
    EXPECT_NEAR(losses[i], ref_losses[i], 1e-5 * std::abs(ref_losses[i])) << "step " << i + 1;
  EXPECT_LT(ref_losses.back(), ref_losses.front());
  // Final weights: Adam turns the rounding noise of near-zero gradients into lr-sized steps (m / sqrt(v) is
  // about sign(g)), so weights agree to ~lr x steps there, not to 1e-5; the key bias (exact gradient 0) is
  // pure noise and is skipped.
  std::vector<float> ref_after = read_floats(dir + "/params_after.bin", model.num_params());
  for (const auto& e : table.entries()) {
    if (e.spec.name.find("attention.self.key.bias") != std::string::npos) continue;
    const double err = tensor_rel_error(model.params() + e.offset, ref_after.data() + e.offset, e.numel);
    EXPECT_LT(err, 1e-2) << e.spec.name;
  }
  std::system(("rm -rf " + dir).c_str());
}

}  // namespace
}  // namespace erlangshen
