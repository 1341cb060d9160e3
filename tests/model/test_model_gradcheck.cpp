// Whole-model gradient checks in double precision: every parameter tensor's backward gradient against
// central finite differences of the forward loss, with dropout ON (masks are a function of the key, so the
// loss is a deterministic smooth function of the weights).
#include <gtest/gtest.h>

#include <cmath>

#include "model/megatron_bert.h"
#include "model/synthetic_batch.h"
#include "runtime/philox.h"
#include "test_support.h"

namespace erlangshen {
namespace {

ModelConfig tiny_double_config() {
  ModelConfig m;
  m.hidden = 16;
  m.layers = 2;
  m.heads = 2;
  m.ffn = 32;
  m.vocab_size = 120;
  m.vocab_pad_multiple = 8;
  m.max_positions = 16;
  m.init_std = 0.2;  // larger weights: non-trivial activations everywhere
  return m;
}

// Element indices of a tensor to probe: all for small tensors, else a fixed sample.
std::vector<size_t> probe_indices(size_t n, uint32_t site) {
  std::vector<size_t> idx;
  if (n <= 16) {
    for (size_t i = 0; i < n; ++i) idx.push_back(i);
    return idx;
  }
  PhiloxKey key{site, 77};
  for (uint64_t i = 0; i < 12; ++i) idx.push_back(philox_at(key, i).v[0] % n);
  return idx;
}

// Error of FD vs analytic in units of the tolerance 1e-9 + 1e-5 |numeric| (the 1e-9 floor covers the
// FD rounding noise, ~1e-16 x loss / h); < 1 passes.
double grad_error(double analytic, double numeric) {
  return std::abs(analytic - numeric) / (1e-9 + 1e-5 * std::abs(numeric));
}

// Worst error (grad_error units) of `grads` against central differences of loss() over the probed elements
// of every parameter tensor, reported per tensor.
template <class Loss>
void expect_fd_gradients(MegatronBert<double>& model, const std::vector<double>& grads, Loss&& loss) {
  const double h = 1e-5;
  for (const auto& e : model.table().entries()) {
    double worst = 0;
    for (size_t i : probe_indices(e.numel, e.site)) {
      double& w = model.params()[e.offset + i];
      const double saved = w;
      w = saved + h;
      const double up = loss();
      w = saved - h;
      const double down = loss();
      w = saved;
      worst = std::max(worst, grad_error(grads[e.offset + i], (up - down) / (2 * h)));
    }
    EXPECT_LT(worst, 1.0) << e.spec.name;
  }
}

void run_pretrain_gradcheck(Activation activation) {
  ModelConfig m = tiny_double_config();
  m.activation = activation;
  SelfCommunicator tp;
  MegatronBert<double> model(m, ModelHeads::Pretraining, tp, 0.1, 0.1);
  model.initialize(3);
  // position embeddings beyond T get no gradient: fine, FD agrees (0 = 0)
  PretrainBatch batch = make_synthetic_batch(2, 8, m.vocab_size, 0.3, 11, 0, 0);
  ASSERT_GT(batch.mlm_positions.size(), 0u);
  RngContext rng{99, 5, 3, true};
  const double mden = static_cast<double>(batch.mlm_positions.size()), sden = batch.batch;
  auto loss = [&] {
    PretrainLosses l = model.pretrain_forward_backward(batch, rng, mden, sden, false);
    return l.mlm_sum / mden + l.sop_sum / sden;
  };
  model.zero_grads();
  model.pretrain_forward_backward(batch, rng, mden, sden, true);
  std::vector<double> grads(model.grads(), model.grads() + model.num_params());
  expect_fd_gradients(model, grads, loss);
}

TEST(ModelGradcheck, PretrainingTanhGelu) { run_pretrain_gradcheck(Activation::GeluTanh); }
TEST(ModelGradcheck, PretrainingExactGelu) { run_pretrain_gradcheck(Activation::GeluExact); }

TEST(ModelGradcheck, ClassificationHead) {
  ModelConfig m = tiny_double_config();
  m.num_classes = 3;
  SelfCommunicator tp;
  MegatronBert<double> model(m, ModelHeads::Classification, tp, 0.1, 0.1);
  model.initialize(4);
  PretrainBatch batch = make_synthetic_batch(3, 8, m.vocab_size, 0.0, 12, 0, 0);
  EncoderInputs in{3, 8, batch.input_ids.data(), batch.token_types.data(), batch.attention_mask.data()};
  RngContext rng{5, 2, 0, true};
  const std::vector<double> R = {0.3, -1.2, 0.7, 0.5, 0.1, -0.4, -0.9, 1.1, 0.2};  // loss = sum(logits * R)
  std::vector<double> logits(9);
  auto loss = [&] {
    model.classify_forward(in, rng, logits.data());
    double s = 0;
    for (int i = 0; i < 9; ++i) s += logits[i] * R[i];
    return s;
  };
  model.zero_grads();
  loss();
  model.classify_backward(R.data());
  std::vector<double> grads(model.grads(), model.grads() + model.num_params());
  expect_fd_gradients(model, grads, loss);
}

}  // namespace
}  // namespace erlangshen
