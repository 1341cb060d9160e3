// Collectives over MPI on the job's ranks (run under mpiexec -np 2 and -np 4): values of every collective on
// odd and uneven sizes, the non-blocking forms and their time accounting, the TP/DP group split, and the
// bucketed gradient reducer (all-reduce and ZeRO-1 reduce-scatter + parameter all-gather).
#include <gtest/gtest.h>
#include <mpi.h>

#include <cmath>
#include <memory>

#include "parallel/grad_reducer.h"
#include "parallel/mappings.h"
#include "parallel/mpi_communicator.h"
#include "parallel/process_group.h"
#include "parallel_test_util.h"
#include "runtime/check.h"
#include "runtime/timer.h"

namespace erlangshen {
namespace {

using testing::mpi_session;

std::unique_ptr<MpiCommunicator> make_world(double timeout_s = 60) {
  MPI_Comm c;
  MPI_Comm_dup(MPI_COMM_WORLD, &c);
  return std::make_unique<MpiCommunicator>(mpi_session(), c, "world", timeout_s);
}

// Rank r's value at index i: exact in float, so sums over ranks are exact too.
double value(int r, size_t i) { return (r + 1) * 0.25 + static_cast<double>(i % 17); }

template <class T>
std::vector<T> rank_values(int r, size_t n) {
  std::vector<T> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<T>(value(r, i));
  return v;
}

double sum_over_ranks(int p, size_t i) {
  double s = 0;
  for (int r = 0; r < p; ++r) s += value(r, i);
  return s;
}

std::vector<std::vector<size_t>> piece_layouts(int p) {
  std::vector<size_t> uneven;  // empty pieces on even ranks
  for (int r = 0; r < p; ++r) uneven.push_back(r % 2 == 0 ? 0 : 3 + r);
  std::vector<size_t> ones(p, 1);
  return {balanced_counts(1003, p), balanced_counts(p - 1, p), uneven, ones};
}

TEST(MpiCollectives, AllReduceSumAndMaxOddSizes) {
  auto world = make_world();
  const int p = world->size(), r = world->rank();
  for (size_t n : {size_t{1}, size_t{7}, size_t{1001}, size_t{65537}}) {
    auto f = rank_values<float>(r, n);
    world->all_reduce(f.data(), n, ReduceOp::Sum);
    auto d = rank_values<double>(r, n);
    world->all_reduce(d.data(), n, ReduceOp::Max);
    std::vector<int64_t> k(n, r + 1);
    world->all_reduce(k.data(), n, ReduceOp::Sum);
    for (size_t i = 0; i < n; ++i) {
      ASSERT_EQ(f[i], static_cast<float>(sum_over_ranks(p, i))) << "n " << n << " i " << i;
      ASSERT_EQ(d[i], value(p - 1, i));
      ASSERT_EQ(k[i], p * (p + 1) / 2);
    }
  }
}

TEST(MpiCollectives, ReduceScatterPieces) {
  auto world = make_world();
  const int p = world->size(), r = world->rank();
  for (const auto& counts : piece_layouts(p)) {
    size_t n = 0;
    for (size_t c : counts) n += c;
    auto x = rank_values<float>(r, n);
    world->reduce_scatter(x.data(), counts, ReduceOp::Sum);
    const size_t off = piece_offset(counts, r);
    for (size_t i = off; i < off + counts[r]; ++i) ASSERT_EQ(x[i], static_cast<float>(sum_over_ranks(p, i))) << i;
  }
}

TEST(MpiCollectives, AllGatherPieces) {
  auto world = make_world();
  const int p = world->size(), r = world->rank();
  for (const auto& counts : piece_layouts(p)) {
    size_t n = 0;
    for (size_t c : counts) n += c;
    std::vector<double> x(n, -1.0);
    const size_t off = piece_offset(counts, r);
    for (size_t i = off; i < off + counts[r]; ++i) x[i] = value(r, i);
    world->all_gather(x.data(), counts);
    for (int s = 0; s < p; ++s)
      for (size_t i = piece_offset(counts, s); i < piece_offset(counts, s) + counts[s]; ++i) ASSERT_EQ(x[i], value(s, i));
  }
}

TEST(MpiCollectives, BroadcastAndBarrier) {
  auto world = make_world();
  const int p = world->size(), r = world->rank();
  auto x = rank_values<float>(r, 999);
  world->broadcast(x.data(), x.size(), p - 1);
  EXPECT_EQ(x, rank_values<float>(p - 1, 999));
  std::vector<uint8_t> bytes(33, static_cast<uint8_t>(r));
  world->broadcast(bytes.data(), bytes.size(), 0);
  EXPECT_EQ(bytes, std::vector<uint8_t>(33, 0));
  world->barrier();
}

TEST(MpiCollectives, NonBlockingInFlightTogether) {
  auto world = make_world();
  const int p = world->size(), r = world->rank();
  const size_t n = (1 << 20) + 3;
  auto a = rank_values<float>(r, n), b = rank_values<float>(r, n), c = rank_values<float>(r, n);
  std::vector<double> g(n, -1.0);
  const auto counts = balanced_counts(n, p);
  for (size_t i = piece_offset(counts, r); i < piece_offset(counts, r) + counts[r]; ++i) g[i] = value(r, i);
  const CommStats before = world->stats();
  auto ha = world->all_reduce_async(a.data(), n, ReduceOp::Sum);
  auto hb = world->reduce_scatter_async(b.data(), counts, ReduceOp::Sum);
  auto hg = world->all_gather_async(g.data(), counts);
  auto hc = world->all_reduce_async(c.data(), n, ReduceOp::Max);
  // "compute" while the progress thread moves the data
  Stopwatch sw;
  volatile double sink = 0;
  while (sw.seconds() < 0.05) sink = sink + std::sqrt(sw.seconds());
  hc->wait();
  hg->wait();
  hb->wait();
  ha->wait();
  const size_t off = piece_offset(counts, r);
  for (size_t i = 0; i < n; ++i) {
    ASSERT_EQ(a[i], static_cast<float>(sum_over_ranks(p, i)));
    ASSERT_EQ(c[i], static_cast<float>(value(p - 1, i)));
    if (i >= off && i < off + counts[r]) {
      ASSERT_EQ(b[i], static_cast<float>(sum_over_ranks(p, i)));
    }
  }
  for (int s = 0; s < p; ++s)
    for (size_t i = piece_offset(counts, s); i < piece_offset(counts, s) + counts[s]; ++i) ASSERT_EQ(g[i], value(s, i));
  const CommStats after = world->stats();
  EXPECT_EQ(after.bytes - before.bytes, 3 * n * sizeof(float) + n * sizeof(double));
  EXPECT_GT(after.async_busy_s, before.async_busy_s);
  EXPECT_GE(after.hidden(), 0.0);
}

// gather_from_tp forward rebuilds X from the column chunks; its backward (split) returns this rank's chunk;
// copy_to_tp backward / reduce_from_tp forward sum over the group.
TEST(MpiMappings, GatherSplitAndReducePairs) {
  auto tp = make_world();
  const int p = tp->size(), r = tp->rank();
  const size_t N = 5, C = 4 * static_cast<size_t>(p), Cl = C / p;
  std::vector<float> full(N * C), local(N * Cl), scratch(N * C), back(N * Cl);
  for (size_t n = 0; n < N; ++n)
    for (size_t c = 0; c < C; ++c) full[n * C + c] = static_cast<float>(100 * n + c);
  tp::scatter_to_tp_forward(*tp, full.data(), local.data(), N, C);
  for (size_t n = 0; n < N; ++n)
    for (size_t c = 0; c < Cl; ++c) ASSERT_EQ(local[n * Cl + c], full[n * C + r * Cl + c]);
  std::vector<float> gathered(N * C, -1.0f);
  tp::gather_from_tp_forward(*tp, local.data(), gathered.data(), scratch.data(), N, C);
  EXPECT_EQ(gathered, full);
  tp::gather_from_tp_backward(*tp, gathered.data(), back.data(), N, C);
  EXPECT_EQ(back, local);
  std::vector<double> y(7, r + 1.0);
  tp::reduce_from_tp_forward(*tp, y.data(), y.size());
  tp::copy_to_tp_backward(*tp, y.data(), y.size());
  EXPECT_EQ(y, std::vector<double>(7, p * p * (p + 1) / 2.0));
}

TEST(MpiGroups, TpConsecutiveDpAcross) {
  const int world_size = mpi_session().world_size();
  Config c = testing::equivalence_config();
  c.parallel.tp = 2;
  c.parallel.dp = world_size / 2;
  ProcessGroups g = make_mpi_groups(mpi_session(), c);
  EXPECT_EQ(g.tp_rank, g.world_rank % 2);
  EXPECT_EQ(g.dp_rank, g.world_rank / 2);
  EXPECT_GE(g.local_rank, 0);
  std::vector<int32_t> tp_members(2, -1), dp_members(c.parallel.dp, -1);
  tp_members[g.tp_rank] = g.world_rank;
  dp_members[g.dp_rank] = g.world_rank;
  g.tp_group->all_gather(tp_members.data(), std::vector<size_t>(2, 1));
  g.dp_group->all_gather(dp_members.data(), std::vector<size_t>(c.parallel.dp, 1));
  EXPECT_EQ(std::vector<int>(tp_members.begin(), tp_members.end()), tp_group_ranks(g.dp_rank, 2, c.parallel.dp));
  EXPECT_EQ(std::vector<int>(dp_members.begin(), dp_members.end()), dp_group_ranks(g.tp_rank, 2, c.parallel.dp));
  c.parallel.dp = world_size;  // tp 2 x dp N != N ranks
  EXPECT_THROW(make_mpi_groups(mpi_session(), c), Error);
}

// The reducer over real ranks: buckets started from the hook order give the plain sum (all-reduce) or the
// sum on this rank's shard (ZeRO-1), and all_gather_params rebuilds every rank's shard.
TEST(MpiGradReducer, BucketsGiveTheSum) {
  auto dp = make_world();
  const int p = dp->size(), r = dp->rank();
  const size_t n = 10007;
  const std::vector<FlatRange> segments{{9000, n}, {5000, 9000}, {1234, 5000}, {0, 1234}};
  for (bool zero1 : {false, true}) {
    GradReducer<float> reducer(*dp, segments, n, 2000, zero1);
    ASSERT_EQ(reducer.buckets().size(), 3u);
    for (int round = 0; round < 2; ++round) {  // the reducer is reused every step
      auto g = rank_values<float>(r, n);
      reducer.begin(g.data());
      for (const FlatRange& s : segments) reducer.segment_ready(s.begin, s.end);
      reducer.finish();
      const FlatRange own = reducer.shard();
      if (!zero1) {
        EXPECT_EQ(own.size(), n);
      }
      for (size_t i = own.begin; i < own.end; ++i) ASSERT_EQ(g[i], static_cast<float>(sum_over_ranks(p, i))) << i;
    }
    if (zero1) {
      std::vector<float> params(n, -1.0f);
      for (size_t i = reducer.shard().begin; i < reducer.shard().end; ++i) params[i] = static_cast<float>(r);
      reducer.all_gather_params(params.data());
      const auto shards = balanced_counts(n, p);
      for (int s = 0; s < p; ++s)
        for (size_t i = piece_offset(shards, s); i < piece_offset(shards, s) + shards[s]; ++i)
          ASSERT_EQ(params[i], static_cast<float>(s));
    }
  }
  // Out-of-order segments are a bug in the caller, reported as such.
  GradReducer<float> reducer(*dp, segments, n, 2000, false);
  std::vector<float> g(n);
  reducer.begin(g.data());
  EXPECT_THROW(reducer.segment_ready(0, 1234), Error);
  for (const FlatRange& s : segments) reducer.segment_ready(s.begin, s.end);
  reducer.finish();
}

}  // namespace
}  // namespace erlangshen
