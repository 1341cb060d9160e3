// The trainer's two kinds of groups (model/trainer.h TrainerGroups): on the GPU the device groups are NCCL
// communicators that can only touch device memory, and the host groups are MPI on host scalars. A collective
// routed to the wrong kind would crash or corrupt memory on the GPU, and only there; this test catches it on
// the CPU. Every collective of the device groups must lie inside the model's parameters, gradients or
// activation arenas (MegatronBert::owns), and no collective of the host groups may touch them. The device
// groups are their own MPI communicators (as the NCCL ones are), and training through them must give exactly
// the losses and parameters of the run that uses one set of groups for everything.
#include <gtest/gtest.h>

#include <functional>
#include <memory>

#include "model/trainer.h"
#include "parallel/gpu_placement.h"
#include "parallel/mpi_communicator.h"
#include "parallel/process_group.h"
#include "parallel_test_util.h"

namespace erlangshen {
namespace {

using testing::equivalence_config;
using testing::mpi_session;

// Forwards every collective to `inner` after asking `allowed(data, bytes)`; counts what it forwarded and
// records the first refused collective.
class CheckedCommunicator final : public Communicator {
 public:
  using Allowed = std::function<bool(const void* data, size_t bytes)>;
  CheckedCommunicator(Communicator& inner, std::string label, Allowed allowed)
      : inner_(inner), label_(std::move(label)), allowed_(std::move(allowed)) {}
  int rank() const override { return inner_.rank(); }
  int size() const override { return inner_.size(); }
  std::string name() const override { return inner_.name(); }
  void barrier() override { inner_.barrier(); }
  CommStats stats() const override { return inner_.stats(); }

  int64_t calls = 0;
  std::string refused;  // first collective that touched the wrong memory

 protected:
  void run(const Collective& c) override {
    admit(c);
    dispatch(c, [this](auto* data, const Collective& k) {
      switch (k.kind) {
        case CollectiveKind::AllReduce: inner_.all_reduce(data, k.count, k.op); break;
        case CollectiveKind::ReduceScatter: inner_.reduce_scatter(data, k.counts, k.op); break;
        case CollectiveKind::AllGather: inner_.all_gather(data, k.counts); break;
        case CollectiveKind::Broadcast: inner_.broadcast(data, k.count, k.root); break;
        case CollectiveKind::Barrier: inner_.barrier(); break;
      }
    });
  }
  CommHandle start(const Collective& c) override {
    admit(c);
    CommHandle h;
    dispatch(c, [this, &h](auto* data, const Collective& k) {
      switch (k.kind) {
        case CollectiveKind::AllReduce: h = inner_.all_reduce_async(data, k.count, k.op); break;
        case CollectiveKind::ReduceScatter: h = inner_.reduce_scatter_async(data, k.counts, k.op); break;
        case CollectiveKind::AllGather: h = inner_.all_gather_async(data, k.counts); break;
        default: h = Communicator::start(k); break;  // runs it blocking through run()
      }
    });
    return h;
  }

 private:
  void admit(const Collective& c) {
    ++calls;
    if (c.kind != CollectiveKind::Barrier && !allowed_(c.data, c.bytes()) && refused.empty())
      refused = label_ + ": " + c.describe();
  }
  template <class F>
  static void dispatch(const Collective& c, F&& f) {
    switch (c.dtype) {
      case DType::F32: f(static_cast<float*>(c.data), c); break;
      case DType::F64: f(static_cast<double*>(c.data), c); break;
      case DType::I32: f(static_cast<int32_t*>(c.data), c); break;
      case DType::I64: f(static_cast<int64_t*>(c.data), c); break;
      case DType::U8: f(static_cast<uint8_t*>(c.data), c); break;
    }
  }
  Communicator& inner_;
  std::string label_;
  Allowed allowed_;
};

struct Trained {
  std::vector<double> losses;
  std::vector<float> params;
};

void check_routing(int tp, int dp, bool zero1) {
  Config c = equivalence_config();
  c.parallel.tp = tp;
  c.parallel.dp = dp;
  c.parallel.zero1 = zero1;
  c.train.grad_accum = 2;
  constexpr int kSteps = 4;
  const std::string what = "tp" + std::to_string(tp) + " x dp" + std::to_string(dp) + (zero1 ? " zero1" : "");

  // Reference: one set of MPI groups for host scalars and model buffers alike.
  Trained one_set;
  {
    ProcessGroups g = make_mpi_groups(mpi_session(), c);
    SyntheticDataSource data(c.train.micro_batch, c.train.grad_accum, c.train.seq_len, c.model.vocab_size,
                             c.data.mask_prob, c.train.seed, g.dp_rank);
    PretrainTrainer trainer(c, TrainerGroups{g.tp_group.get(), g.dp_group.get(), g.world.get()}, data,
                            Logger(g.world_rank, g.world_size));
    trainer.set_dp_bucket_elems(10000);
    for (int s = 0; s < kSteps; ++s) one_set.losses.push_back(trainer.train_step().loss);
    one_set.params = trainer.model().params_to_host();
  }

  // Two sets: host groups and (separate communicators over the same ranks) device groups, each checked.
  ProcessGroups host = make_mpi_groups(mpi_session(), c);
  ProcessGroups device = make_mpi_groups(mpi_session(), c);
  PretrainTrainer* trainer_ptr = nullptr;  // set once constructed (construction runs no collective)
  const auto in_model = [&trainer_ptr](const void* p, size_t bytes) {
    return trainer_ptr != nullptr && trainer_ptr->model().owns(p, bytes);
  };
  const auto not_in_model = [&](const void* p, size_t bytes) { return !in_model(p, bytes); };
  CheckedCommunicator host_tp(*host.tp_group, "host tp", not_in_model);
  CheckedCommunicator host_dp(*host.dp_group, "host dp", not_in_model);
  CheckedCommunicator host_world(*host.world, "host world", not_in_model);
  CheckedCommunicator device_tp(*device.tp_group, "device tp", in_model);
  CheckedCommunicator device_dp(*device.dp_group, "device dp", in_model);
  SyntheticDataSource data(c.train.micro_batch, c.train.grad_accum, c.train.seq_len, c.model.vocab_size,
                           c.data.mask_prob, c.train.seed, host.dp_rank);
  TrainerGroups groups{&host_tp, &host_dp, &host_world, &device_tp, &device_dp};
  PretrainTrainer trainer(c, groups, data, Logger(host.world_rank, host.world_size));
  trainer_ptr = &trainer;
  trainer.set_dp_bucket_elems(10000);
  std::vector<double> losses;
  for (int s = 0; s < kSteps; ++s) losses.push_back(trainer.train_step().loss);

  for (const CheckedCommunicator* k : {&host_tp, &host_dp, &host_world, &device_tp, &device_dp})
    EXPECT_EQ(k->refused, "") << what << ": a collective in the wrong group";
  // Both kinds carried traffic: loss sums / norms on the host groups, activations / gradients on the device ones.
  if (tp > 1) {
    EXPECT_GT(device_tp.calls, 0) << what;
    EXPECT_GT(host_tp.calls, 0) << what;
  }
  if (dp > 1) {
    EXPECT_GT(device_dp.calls, 0) << what;
    EXPECT_GT(host_dp.calls, 0) << what;
  }
  for (int s = 0; s < kSteps; ++s) EXPECT_EQ(losses[s], one_set.losses[s]) << what << ": step " << s + 1;
  EXPECT_EQ(trainer.model().params_to_host(), one_set.params) << what << ": parameters differ";
}

bool world_is(int n) { return mpi_session().world_size() == n; }

TEST(DeviceGroups, Tp2AndDp2RouteModelBuffersAndHostScalarsApart) {
  if (!world_is(2)) GTEST_SKIP() << "needs 2 ranks";
  check_routing(2, 1, false);
  check_routing(1, 2, false);
  check_routing(1, 2, true);
}

TEST(DeviceGroups, Tp2Dp2Zero1RoutesModelBuffersAndHostScalarsApart) {
  if (!world_is(4)) GTEST_SKIP() << "needs 4 ranks";
  check_routing(2, 2, true);
}

// The placement check's all-gather: every rank sees every rank's string, in world rank order, whatever its
// length (an over-long one is cut to 127 bytes).
TEST(GpuPlacement, GatherGivesEveryRanksPlacement) {
  const int n = mpi_session().world_size();
  if (n < 2) GTEST_SKIP() << "needs 2 or more ranks";
  Config c = equivalence_config();
  c.parallel.dp = n;
  ProcessGroups g = make_mpi_groups(mpi_session(), c);
  const auto mine = [](int r) { return r == 1 ? std::string(300, 'x') : "node" + std::to_string(r) + "/0000:1B:00.0"; };
  const std::vector<std::string> all = gather_placements(*g.world, mine(g.world_rank));
  ASSERT_EQ(all.size(), static_cast<size_t>(n));
  for (int r = 0; r < n; ++r) EXPECT_EQ(all[r], r == 1 ? std::string(127, 'x') : mine(r)) << "rank " << r;
  EXPECT_EQ(shared_gpu_conflict(all), "");
}

}  // namespace
}  // namespace erlangshen
