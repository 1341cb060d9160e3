// parallel_fault_probe MODE TIMEOUT_S: DP=2 pretraining of the small equivalence model, run as
// `mpiexec -np 2 parallel_fault_probe hang|kill|none 3`. At the start of step 3 rank 1 stops (SIGSTOP: a hung
// rank) or dies (SIGKILL) while rank 0 goes on into the step's collectives. parallel_fault_tests checks that
// the job then exits non-zero within the timeout and says which rank / collective failed.
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "model/trainer.h"
#include "parallel/mpi_communicator.h"
#include "parallel/process_group.h"
#include "parallel_test_util.h"
#include "runtime/threading.h"

namespace erlangshen {
namespace {

class FaultyData final : public PretrainDataSource {
 public:
  FaultyData(PretrainDataSource& inner, int signal, int at_step) : inner_(inner), signal_(signal), at_step_(at_step) {}
  std::vector<PretrainBatch> next_step() override {
    if (++steps_ == at_step_ && signal_ != 0) std::raise(signal_);
    return inner_.next_step();
  }
  nlohmann::json cursor() const override { return inner_.cursor(); }
  void restore(const nlohmann::json& c) override { inner_.restore(c); }
  std::string describe() const override { return "faulty " + inner_.describe(); }

 private:
  PretrainDataSource& inner_;
  int signal_, at_step_, steps_ = 0;
};

}  // namespace
}  // namespace erlangshen

int main(int argc, char** argv) {
  using namespace erlangshen;
  if (argc < 3) {
    std::fprintf(stderr, "usage: parallel_fault_probe hang|kill|none TIMEOUT_S\n");
    return 2;
  }
  const std::string mode = argv[1];
  MpiSession session(&argc, &argv);
  set_compute_threads(1);
  Config c = testing::equivalence_config();
  c.parallel.dp = 2;
  c.parallel.timeout_s = std::atof(argv[2]);
  c.train.steps = 20;
  c.log.every = 1000;
  ProcessGroups g = make_mpi_groups(session, c);
  SyntheticDataSource synthetic(c.train.micro_batch, c.train.grad_accum, c.train.seq_len, c.model.vocab_size,
                                c.data.mask_prob, c.train.seed, g.dp_rank);
  const int signal = g.world_rank != 1 ? 0 : mode == "hang" ? SIGSTOP : mode == "kill" ? SIGKILL : 0;
  FaultyData data(synthetic, signal, 3);
  Logger log(g.world_rank, g.world_size);
  PretrainTrainer trainer(c, TrainerGroups{g.tp_group.get(), g.dp_group.get(), g.world.get()}, data, log);
  trainer.run();
  log.info("probe finished " + std::to_string(c.train.steps) + " steps");
  return 0;
}
