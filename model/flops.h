// Model FLOPs of a MegatronBERT training step (forward + backward = 3 x forward), counting GEMMs and the
// attention score/context products, the MLM head on masked positions only (as we compute it).
#pragma once
#include <cstdint>

#include "runtime/config.h"

namespace erlangshen {

inline double forward_flops_per_token(const ModelConfig& m, int seq_len) {
  const double C = m.hidden, F = m.ffn, T = seq_len;
  const double per_layer = 2 * 3 * C * C + 2 * C * C + 2 * 2 * C * F + 2 * 2 * T * C;
  return m.layers * per_layer;
}

// tokens: real tokens in the step; masked: MLM positions; samples: sequences (pooler + SOP)
inline double training_flops(const ModelConfig& m, int seq_len, double tokens, double masked, double samples) {
  const double C = m.hidden, V = m.padded_vocab();
  const double fwd = tokens * forward_flops_per_token(m, seq_len) + masked * (2 * C * C + 2 * C * V) +
                     samples * (2 * C * C + 2 * 2 * C);
  return 3.0 * fwd;
}

}  // namespace erlangshen
