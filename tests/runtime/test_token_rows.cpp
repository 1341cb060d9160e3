// The word-embedding backward's token-rows index (runtime/token_rows.h): the rows of a vocabulary shard with their
// tokens in batch order, checked against its definition; and the backward from it gives the scan's bits.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "runtime/cpu/kernels.h"
#include "runtime/token_rows.h"

namespace erlangshen {
namespace {

// A batch with one id far more frequent than the rest (a [MASK]-like token) and ids on both sides of the shard.
std::vector<int32_t> skewed_ids(int N, int id_range, int frequent, uint32_t seed) {
  std::mt19937 gen(seed);
  std::vector<int32_t> ids(static_cast<size_t>(N));
  for (int n = 0; n < N; ++n) ids[n] = n % 5 == 0 ? frequent : static_cast<int32_t>(gen() % id_range);
  return ids;
}

TEST(TokenRows, ListsEachShardRowWithItsTokensInBatchOrder) {
  const int N = 150, vocab_start = 40, V_local = 60;
  const std::vector<int32_t> ids = skewed_ids(N, 200, 77, 3);
  TokenRowsBuilder b;
  b.build(ids.data(), N, vocab_start, V_local);
  // Definition: for v = 0 .. V_local - 1 in order, the tokens n (ascending) with ids[n] == vocab_start + v; rows
  // without tokens not listed.
  std::vector<int32_t> want_row, want_start, want_tokens;
  for (int v = 0; v < V_local; ++v) {
    std::vector<int32_t> mine;
    for (int n = 0; n < N; ++n)
      if (ids[n] == vocab_start + v) mine.push_back(n);
    if (mine.empty()) continue;
    want_row.push_back(v);
    want_start.push_back(static_cast<int32_t>(want_tokens.size()));
    want_tokens.insert(want_tokens.end(), mine.begin(), mine.end());
  }
  want_start.push_back(static_cast<int32_t>(want_tokens.size()));
  EXPECT_EQ(b.row(), want_row);
  EXPECT_EQ(b.start(), want_start);
  EXPECT_EQ(b.tokens(), want_tokens);
  EXPECT_LT(b.tokens().size(), static_cast<size_t>(N)) << "the batch should have ids outside the shard";
  EXPECT_LT(b.rows(), V_local) << "the batch should leave some rows of the shard without tokens";

  // Rebuilt for another batch into the same builder: nothing of the first one left.
  const std::vector<int32_t> few = {45, 45, 3, 100, 40};
  b.build(few.data(), 5, vocab_start, V_local);
  EXPECT_EQ(b.row(), (std::vector<int32_t>{0, 5}));
  EXPECT_EQ(b.start(), (std::vector<int32_t>{0, 1, 3}));
  EXPECT_EQ(b.tokens(), (std::vector<int32_t>{4, 0, 1}));
  b.build(few.data(), 5, 1000, 8);  // a shard none of the ids falls in
  EXPECT_EQ(b.rows(), 0);
  EXPECT_EQ(b.start(), std::vector<int32_t>{0});
  EXPECT_TRUE(b.tokens().empty());
}

TEST(TokenRows, EmbeddingBackwardFromRowsIsTheScanBitForBit) {
  const int N = 700, C = 37, vocab_start = 10, V_local = 75;
  const std::vector<int32_t> ids = skewed_ids(N, 100, 77, 5);
  std::mt19937 gen(9);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> dout(static_cast<size_t>(N) * C), dword0(static_cast<size_t>(V_local) * C);
  for (float& x : dout) x = d(gen);
  for (float& x : dword0) x = d(gen);
  std::vector<float> scan = dword0, from_rows = dword0;
  cpu::word_embedding_backward(scan.data(), dout.data(), ids.data(), N, C, vocab_start, V_local);
  TokenRowsBuilder b;
  b.build(ids.data(), N, vocab_start, V_local);
  cpu::word_embedding_backward_rows(from_rows.data(), dout.data(), b.host_view(), C);
  EXPECT_EQ(std::memcmp(scan.data(), from_rows.data(), sizeof(float) * scan.size()), 0);
  EXPECT_NE(std::memcmp(scan.data(), dword0.data(), sizeof(float) * scan.size()), 0);
}

}  // namespace
}  // namespace erlangshen
