// The small model of the whole-model GPU tests (parity, checkpoints, fine-tuning): h64 L2 A4 F256, vocab 1000
// (1024 rows after padding), seq 32, micro-batch 4 x 2 accumulated, dropout on. Each test overrides what it needs.
#pragma once
#include "runtime/config.h"

namespace erlangshen::testing {

inline Config small_gpu_model_config() {
  Config c;
  c.source = "<gpu model test>";
  c.model.hidden = 64;
  c.model.layers = 2;
  c.model.heads = 4;
  c.model.ffn = 256;
  c.model.vocab_size = 1000;
  c.model.max_positions = 64;
  c.train.micro_batch = 4;
  c.train.grad_accum = 2;
  c.train.seq_len = 32;
  c.train.lr = 1e-3;
  c.train.warmup_steps = 0;
  c.train.steps = 3;
  c.train.dropout = 0.1;
  c.train.attention_dropout = 0.1;
  c.train.seed = 20240607;
  return c;
}

}  // namespace erlangshen::testing
