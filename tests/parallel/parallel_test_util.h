// Helpers shared by the parallel tests: the small equivalence config, a communicator that only knows its
// rank (for building TP shards in one process), and the MPI session of the multi-rank test binary.
#pragma once
#include <stdexcept>
#include <string>

#include "parallel/communicator.h"
#include "runtime/config.h"

namespace erlangshen {
class MpiSession;
}

namespace erlangshen::testing {

// Smaller than tiny (the point is equivalence, not speed): h64 L2 A4 F128, seq 32, micro-batch 4. The vocab
// (500 -> 512 rows) pads to the same 512 rows under TP = 1, 2 and 4, so every layout has the same logits.
// Dropout on.
inline Config equivalence_config() {
  Config c;
  c.source = "<equivalence test>";
  c.model.hidden = 64;
  c.model.layers = 2;
  c.model.heads = 4;
  c.model.ffn = 128;
  c.model.vocab_size = 500;
  c.model.vocab_pad_multiple = 128;
  c.model.max_positions = 64;
  c.train.micro_batch = 4;
  c.train.seq_len = 32;
  c.train.steps = 10;
  c.train.warmup_steps = 2;
  c.train.lr = 1e-3;
  // AdamW divides by sqrt(v) + eps: with the default 1e-8 an element whose gradient is rounding noise (1e-9)
  // moves by ~lr whichever way the noise falls, so summation-order differences between layouts become
  // parameter differences of ~1e-5. A larger eps keeps the comparison about the layout, not about Adam.
  c.train.adam_eps = 1e-6;
  c.train.dropout = 0.1;
  c.train.attention_dropout = 0.1;
  c.train.threads = 1;
  c.train.seed = 4242;
  c.parallel.timeout_s = 60;
  return c;
}

// Knows its rank and size, refuses to communicate: builds the TP shard of rank r in a single process.
class RankOnlyCommunicator final : public Communicator {
 public:
  RankOnlyCommunicator(int rank, int size) : rank_(rank), size_(size) {}
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string name() const override { return "rank-only"; }
  void barrier() override { throw std::logic_error("RankOnlyCommunicator cannot communicate"); }

 protected:
  void run(const Collective& c) override {
    throw std::logic_error("RankOnlyCommunicator cannot run " + c.describe());
  }

 private:
  int rank_, size_;
};

// The multi-rank test binary's MPI session (tests/parallel/mpi_test_main.cpp).
MpiSession& mpi_session();

}  // namespace erlangshen::testing
