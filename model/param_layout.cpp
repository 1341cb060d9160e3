#include "model/param_layout.h"

#include <cmath>

namespace erlangshen {

std::string layer_prefix(int layer) { return "bert.encoder.layer." + std::to_string(layer) + "."; }

ParamTable build_param_table(const ModelConfig& m, ModelHeads heads, int tp_rank, int tp_size) {
  const int64_t C = m.hidden, F = m.ffn, V = m.padded_vocab(tp_size);
  const double std = m.init_std;
  const double out_std = m.scaled_output_init ? std / std::sqrt(2.0 * m.layers) : std;
  ParamTable t;
  auto weight = [&](const std::string& name, std::vector<int64_t> shape, int split, double s) {
    t.add(ParamSpec{name, std::move(shape), split, true, InitKind::Normal, s});
  };
  auto bias = [&](const std::string& name, int64_t n, int split) {
    t.add(ParamSpec{name, {n}, split, false, InitKind::Zeros, 0.0});
  };
  auto layernorm = [&](const std::string& name) {
    t.add(ParamSpec{name + ".weight", {C}, -1, false, InitKind::Ones, 0.0});
    t.add(ParamSpec{name + ".bias", {C}, -1, false, InitKind::Zeros, 0.0});
  };

  weight("bert.embeddings.word_embeddings.weight", {V, C}, 0, std);
  weight("bert.embeddings.position_embeddings.weight", {m.max_positions, C}, -1, std);
  weight("bert.embeddings.token_type_embeddings.weight", {m.type_vocab, C}, -1, std);
  for (int l = 0; l < m.layers; ++l) {
    const std::string p = layer_prefix(l);
    layernorm(p + "attention.ln");
    for (const char* qkv : {"query", "key", "value"}) weight(p + "attention.self." + qkv + ".weight", {C, C}, 0, std);
    for (const char* qkv : {"query", "key", "value"}) bias(p + "attention.self." + qkv + ".bias", C, 0);
    weight(p + "attention.output.dense.weight", {C, C}, 1, out_std);
    bias(p + "attention.output.dense.bias", C, -1);
    layernorm(p + "ln");
    weight(p + "intermediate.dense.weight", {F, C}, 0, std);
    bias(p + "intermediate.dense.bias", F, 0);
    weight(p + "output.dense.weight", {C, F}, 1, out_std);
    bias(p + "output.dense.bias", C, -1);
  }
  layernorm("bert.encoder.ln");
  weight("bert.pooler.dense.weight", {C, C}, -1, std);
  bias("bert.pooler.dense.bias", C, -1);
  if (heads == ModelHeads::Pretraining) {
    weight("cls.predictions.transform.dense.weight", {C, C}, -1, std);
    bias("cls.predictions.transform.dense.bias", C, -1);
    layernorm("cls.predictions.transform.LayerNorm");
    bias("cls.predictions.bias", V, 0);
    weight("cls.seq_relationship.weight", {2, C}, -1, std);
    bias("cls.seq_relationship.bias", 2, -1);
  } else {
    weight("classifier.weight", {m.num_classes, C}, -1, std);
    bias("classifier.bias", m.num_classes, -1);
  }
  t.finalize(tp_rank, tp_size);
  return t;
}

}  // namespace erlangshen
