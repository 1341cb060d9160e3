// Parameter table: layout, and initialisation keyed by global index so a TP shard equals the slice of the
// unsharded tensor (rows, columns, replicated).
#include <gtest/gtest.h>

#include <cmath>

#include "runtime/check.h"
#include "runtime/param_table.h"

namespace erlangshen {
namespace {

ParamTable make_table(int rank, int tp) {
  ParamTable t;
  t.add({"rows", {8, 6}, 0, true, InitKind::Normal, 0.02});
  t.add({"cols", {6, 8}, 1, true, InitKind::Normal, 0.02});
  t.add({"bias", {8}, 0, false, InitKind::Zeros, 0.0});
  t.add({"rep", {5}, -1, false, InitKind::Normal, 1.0});
  t.add({"ln", {5}, -1, false, InitKind::Ones, 0.0});
  t.finalize(rank, tp);
  return t;
}

TEST(ParamTable, ShardsEqualSlicesOfTheUnshardedTensor) {
  ParamTable full = make_table(0, 1);
  std::vector<float> whole(full.total());
  initialize_parameters(full, whole.data(), 42);
  for (int tp : {2, 4}) {
    for (int r = 0; r < tp; ++r) {
      ParamTable shard = make_table(r, tp);
      std::vector<float> local(shard.total());
      initialize_parameters(shard, local.data(), 42);
      const auto& rows = shard.at("rows");
      ASSERT_EQ(rows.local_shape, (std::vector<int64_t>{8 / tp, 6}));
      for (int64_t i = 0; i < 8 / tp; ++i)
        for (int64_t j = 0; j < 6; ++j)
          EXPECT_EQ(local[rows.offset + i * 6 + j], whole[full.at("rows").offset + (r * 8 / tp + i) * 6 + j]);
      const auto& cols = shard.at("cols");
      ASSERT_EQ(cols.local_shape, (std::vector<int64_t>{6, 8 / tp}));
      for (int64_t i = 0; i < 6; ++i)
        for (int64_t j = 0; j < 8 / tp; ++j)
          EXPECT_EQ(local[cols.offset + i * (8 / tp) + j], whole[full.at("cols").offset + i * 8 + r * 8 / tp + j]);
      for (int64_t i = 0; i < 5; ++i) {
        EXPECT_EQ(local[shard.at("rep").offset + i], whole[full.at("rep").offset + i]);
        EXPECT_EQ(local[shard.at("ln").offset + i], 1.0f);
      }
    }
  }
}

TEST(ParamTable, InitStatistics) {
  ParamTable t;
  t.add({"w", {400, 500}, -1, true, InitKind::Normal, 0.02});
  t.finalize(0, 1);
  std::vector<double> w(t.total());
  initialize_parameters(t, w.data(), 1);
  double mean = 0, var = 0;
  for (double x : w) mean += x;
  mean /= w.size();
  for (double x : w) var += (x - mean) * (x - mean);
  var /= w.size();
  EXPECT_NEAR(mean, 0.0, 0.02 * 6 / std::sqrt(200000.0));
  EXPECT_NEAR(std::sqrt(var), 0.02, 0.02 * 0.01);
}

TEST(ParamTable, IndivisibleSplitIsAnError) {
  ParamTable t;
  t.add({"w", {6, 4}, 0, true, InitKind::Normal, 0.02});
  EXPECT_THROW(t.finalize(0, 4), Error);
}

}  // namespace
}  // namespace erlangshen
