// Single-process tests of the parallel runtime: rank layout, launcher environment, layout checks, piece
// arithmetic, bucket planning, SelfCommunicator, the model's gradient-ready hook and shard-equals-slice.
#include <gtest/gtest.h>

#include <map>

#include "model/megatron_bert.h"
#include "model/synthetic_batch.h"
#include "parallel/gpu_placement.h"
#include "parallel/grad_reducer.h"
#include "parallel/process_group.h"
#include "parallel_test_util.h"

namespace erlangshen {
namespace {

using testing::equivalence_config;
using testing::RankOnlyCommunicator;

TEST(ProcessGroups, TpInnermostLayout) {
  // tp 2 x dp 3: TP groups {0,1} {2,3} {4,5}; DP groups {0,2,4} {1,3,5}.
  EXPECT_EQ(tp_group_ranks(1, 2, 3), (std::vector<int>{2, 3}));
  EXPECT_EQ(dp_group_ranks(1, 2, 3), (std::vector<int>{1, 3, 5}));
  for (int w = 0; w < 6; ++w) {
    const LayoutCoords c = layout_coords(w, 2, 3);
    EXPECT_EQ(c.tp_rank, w % 2);
    EXPECT_EQ(c.dp_rank, w / 2);
    EXPECT_EQ(tp_group_ranks(c.dp_rank, 2, 3)[c.tp_rank], w);
    EXPECT_EQ(dp_group_ranks(c.tp_rank, 2, 3)[c.dp_rank], w);
  }
  EXPECT_THROW(layout_coords(6, 2, 3), Error);
}

TEST(ProcessGroups, LocalRankFromLauncherEnvironment) {
  auto env = [](std::map<std::string, std::string> m) {
    return [m](const char* k) -> const char* {
      auto it = m.find(k);
      return it == m.end() ? nullptr : it->second.c_str();
    };
  };
  EXPECT_EQ(local_rank_from_env(env({})), -1);
  EXPECT_EQ(local_rank_from_env(env({{"SLURM_LOCALID", "3"}})), 3);
  EXPECT_EQ(local_rank_from_env(env({{"OMPI_COMM_WORLD_LOCAL_RANK", "1"}, {"SLURM_LOCALID", "3"}})), 1);
  EXPECT_EQ(local_rank_from_env(env({{"MPI_LOCALRANKID", "2"}})), 2);
  EXPECT_THROW(local_rank_from_env(env({{"SLURM_LOCALID", "x"}})), Error);
}

TEST(ProcessGroups, LayoutChecksNameTheKeys) {
  Config c = equivalence_config();
  c.parallel.tp = 2;
  c.parallel.dp = 2;
  EXPECT_NO_THROW(check_layout(c, 4));
  try {
    check_layout(c, 3);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("parallel.tp"), std::string::npos) << m;
    EXPECT_NE(m.find("parallel.dp"), std::string::npos) << m;
    EXPECT_NE(m.find("(3)"), std::string::npos) << m;
  }
  c.parallel.tp = 8;
  c.parallel.dp = 1;
  try {
    check_layout(c, 8);  // 4 heads
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.heads"), std::string::npos) << e.what();
  }
}

// Two ranks on one physical GPU are refused with both ranks, the GPU and the host named; the same bus id on two
// hosts, or two GPUs of one host, are fine.
TEST(GpuPlacement, SharedGpuIsRefusedNamingRanksHostAndGpu) {
  EXPECT_EQ(shared_gpu_conflict({"a/0000:1B:00.0", "a/0000:2C:00.0", "b/0000:1B:00.0", "b/0000:2C:00.0"}), "");
  EXPECT_EQ(shared_gpu_conflict({"a/0000:1B:00.0"}), "");
  const std::string m = shared_gpu_conflict({"a/0000:1B:00.0", "b/0000:1B:00.0", "a/0000:2C:00.0", "b/0000:1B:00.0"});
  EXPECT_NE(m.find("world ranks 1 and 3"), std::string::npos) << m;
  EXPECT_NE(m.find("GPU 0000:1B:00.0 of host b"), std::string::npos) << m;
  EXPECT_NE(m.find("one GPU per rank"), std::string::npos) << m;
}

TEST(Pieces, BalancedCountsAndOffsets) {
  EXPECT_EQ(balanced_counts(10, 4), (std::vector<size_t>{3, 3, 2, 2}));
  EXPECT_EQ(balanced_counts(2, 4), (std::vector<size_t>{1, 1, 0, 0}));
  const auto c = balanced_counts(1003, 4);
  EXPECT_EQ(piece_offset(c, 0), 0u);
  EXPECT_EQ(piece_offset(c, 3), 753u);
  EXPECT_EQ(piece_offset(c, 4), 1003u);
}

TEST(Buckets, PackSegmentsInReadyOrder) {
  // Ready order as the model reports it: tail [90,100), layer 1 [50,90), layer 0 [10,50), embeddings [0,10).
  const std::vector<FlatRange> seg{{90, 100}, {50, 90}, {10, 50}, {0, 10}};
  auto b = plan_buckets(seg, 45);
  ASSERT_EQ(b.size(), 2u);
  EXPECT_EQ(b[0].begin, 50u);  // tail + layer 1 = 50 >= 45
  EXPECT_EQ(b[0].end, 100u);
  EXPECT_EQ(b[0].last_segment, 1u);
  EXPECT_EQ(b[1].begin, 0u);   // layer 0 + embeddings (closed at the end)
  EXPECT_EQ(b[1].end, 50u);
  EXPECT_EQ(plan_buckets(seg, 1).size(), 4u);
  EXPECT_EQ(plan_buckets(seg, 1000).size(), 1u);
  // ZeRO-1 pieces of bucket [50, 100) over shards of 34, 33, 33 elements: [50,67) rank 1, [67,100) rank 2.
  EXPECT_EQ(bucket_piece_counts(b[0], balanced_counts(100, 3)), (std::vector<size_t>{0, 17, 33}));
}

TEST(Communicators, SelfIsIdentityAndChecksPieces) {
  SelfCommunicator self("dp");
  std::vector<float> x{1, 2, 3};
  self.all_reduce(x.data(), 3, ReduceOp::Sum);
  self.reduce_scatter(x.data(), {3});
  self.all_gather(x.data(), {3});
  self.broadcast(x.data(), 3, 0);
  self.all_reduce_async(x.data(), 3, ReduceOp::Max)->wait();
  EXPECT_EQ(x, (std::vector<float>{1, 2, 3}));
  EXPECT_THROW(self.reduce_scatter(x.data(), {1, 2}), Error);
  EXPECT_THROW(self.broadcast(x.data(), 3, 1), Error);
  Collective c;
  c.kind = CollectiveKind::AllReduce;
  c.count = 786432;
  EXPECT_EQ(c.describe(), "all_reduce(sum) of 3145728 bytes (786432 x float32)");
}

// The hook reports segments in grad_ready_segments() order, they tile the buffer, and a reported segment's
// gradients no longer change for the rest of the backward (so starting its reduction then is safe).
TEST(GradReadyHook, SegmentsAreFinalWhenReported) {
  Config c = equivalence_config();
  SelfCommunicator tp("tp");
  MegatronBert<float> model(c.model, ModelHeads::Pretraining, tp, c.train.dropout, c.train.attention_dropout);
  model.initialize(c.train.seed);
  const auto expected = model.grad_ready_segments();
  size_t covered = 0;
  for (const auto& s : expected) covered += s.second - s.first;
  EXPECT_EQ(covered, model.num_params());

  PretrainBatch batch = make_synthetic_batch(4, 32, c.model.vocab_size, 0.15, 7, 0, 0);
  std::vector<std::pair<size_t, size_t>> seen;
  std::vector<std::vector<float>> snapshots;
  model.set_grad_ready_hook([&](size_t b, size_t e) {
    seen.push_back({b, e});
    snapshots.emplace_back(model.grads() + b, model.grads() + e);
  });
  model.zero_grads();
  model.pretrain_forward_backward(batch, RngContext{c.train.seed, 1, 0, true}, 10.0, 4.0, true);
  ASSERT_EQ(seen, expected);
  for (size_t k = 0; k < seen.size(); ++k) {
    const std::vector<float> now(model.grads() + seen[k].first, model.grads() + seen[k].second);
    EXPECT_EQ(now, snapshots[k]) << "segment " << k << " changed after it was reported final";
  }
}

// Every TP shard equals the matching slice of the TP=1 tensor, checked with explicit row/column arithmetic
// (not with ParamEntry::global_index, which the equivalence tests rely on).
TEST(ShardEqualsSlice, Tp2AndTp4) {
  Config c = equivalence_config();
  SelfCommunicator one("tp");
  MegatronBert<float> full(c.model, ModelHeads::Pretraining, one, 0.0, 0.0);
  full.initialize(c.train.seed);
  for (int p : {2, 4}) {
    ASSERT_EQ(c.model.padded_vocab(p), c.model.padded_vocab(1));
    for (int r = 0; r < p; ++r) {
      RankOnlyCommunicator tp(r, p);
      MegatronBert<float> shard(c.model, ModelHeads::Pretraining, tp, 0.0, 0.0);
      shard.initialize(c.train.seed);
      for (const auto& e : shard.table().entries()) {
        const auto& g = full.table().at(e.spec.name);
        const float* ref = full.params() + g.offset;
        const float* got = shard.params() + e.offset;
        const int64_t rows = e.spec.global_shape[0];
        const int64_t cols = e.spec.global_shape.size() > 1 ? e.spec.global_shape[1] : 1;
        size_t mismatches = 0, i = 0;
        if (e.spec.split_axis == 0) {
          const int64_t lr = rows / p;
          for (int64_t a = 0; a < lr; ++a)
            for (int64_t b = 0; b < cols; ++b, ++i) mismatches += got[i] != ref[(r * lr + a) * cols + b];
        } else if (e.spec.split_axis == 1) {
          const int64_t lc = cols / p;
          for (int64_t a = 0; a < rows; ++a)
            for (int64_t b = 0; b < lc; ++b, ++i) mismatches += got[i] != ref[a * cols + r * lc + b];
        } else {
          for (; i < g.numel; ++i) mismatches += got[i] != ref[i];
        }
        EXPECT_EQ(i, e.numel) << e.spec.name;
        EXPECT_EQ(mismatches, 0u) << e.spec.name << " on TP rank " << r << " of " << p;
      }
    }
  }
}

}  // namespace
}  // namespace erlangshen
