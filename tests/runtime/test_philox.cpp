// Philox keyed by global coordinates: known-answer test of Random123's Philox4x32-10, key derivation
// separates purposes, and uniform/dropout statistics.
#include <gtest/gtest.h>

#include <vector>

#include "runtime/philox.h"

namespace erlangshen {
namespace {

TEST(Philox, KnownAnswerFromRandom123) {
  // Random123 kat_vectors: philox4x32 10 rounds, ctr = {0,0,0,0}, key = {0,0}
  Philox4 r = philox_block(PhiloxKey{0, 0}, 0, 0, 0, 0);
  EXPECT_EQ(r.v[0], 0x6627e8d5u);
  EXPECT_EQ(r.v[1], 0xe169c58du);
  EXPECT_EQ(r.v[2], 0xbc57ac4cu);
  EXPECT_EQ(r.v[3], 0x9b00dbd8u);
  // ctr = {243f6a88 85a308d3 13198a2e 03707344}, key = {a4093822 299f31d0}
  r = philox_block(PhiloxKey{0xa4093822u, 0x299f31d0u}, 0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u);
  EXPECT_EQ(r.v[0], 0xd16cfe09u);
  EXPECT_EQ(r.v[1], 0x94fdccebu);
  EXPECT_EQ(r.v[2], 0x5001e420u);
  EXPECT_EQ(r.v[3], 0x24126ea1u);
}

TEST(Philox, DerivedKeysDifferByEveryCoordinate) {
  PhiloxKey base = derive_key(1, RngPurpose::HiddenDropout, 5, 2, 1);
  auto differs = [&](PhiloxKey k) { return k.k0 != base.k0 || k.k1 != base.k1; };
  EXPECT_TRUE(differs(derive_key(2, RngPurpose::HiddenDropout, 5, 2, 1)));
  EXPECT_TRUE(differs(derive_key(1, RngPurpose::AttentionDropout, 5, 2, 1)));
  EXPECT_TRUE(differs(derive_key(1, RngPurpose::HiddenDropout, 6, 2, 1)));
  EXPECT_TRUE(differs(derive_key(1, RngPurpose::HiddenDropout, 5, 3, 1)));
  EXPECT_TRUE(differs(derive_key(1, RngPurpose::HiddenDropout, 5, 2, 0)));
  PhiloxKey again = derive_key(1, RngPurpose::HiddenDropout, 5, 2, 1);
  EXPECT_EQ(again.k0, base.k0);
  EXPECT_EQ(again.k1, base.k1);
}

TEST(Philox, DropoutKeepRateAndUniformMean) {
  const PhiloxKey key = derive_key(7, RngPurpose::Test, 0, 0, 0);
  const uint32_t threshold = dropout_threshold(0.1f);
  const int n = 400000;
  int kept = 0;
  double sum = 0;
  for (int i = 0; i < n; ++i) {
    kept += dropout_keep(key, static_cast<uint64_t>(i), threshold);
    sum += uniform_from_bits(philox_at(key, static_cast<uint64_t>(i)).v[0]);
  }
  EXPECT_NEAR(kept / double(n), 0.9, 0.003);  // 6 sigma
  EXPECT_NEAR(sum / n, 0.5, 0.003);
  EXPECT_EQ(dropout_threshold(0.0f), 0u);
}

}  // namespace
}  // namespace erlangshen

#include "runtime/cpu/philox_batch.h"

namespace erlangshen {
namespace {

TEST(Philox, VectorisedBlocksAndMaskMatchScalar) {
  const PhiloxKey key = derive_key(11, RngPurpose::HiddenDropout, 3, 1, 0);
  std::vector<uint32_t> out(4 * 37);
  const uint64_t first = (uint64_t{1} << 32) - 5;  // crosses the 32-bit boundary of the counter
  cpu::philox_blocks(key, first, 37, out.data());
  for (int i = 0; i < 37; ++i) {
    Philox4 r = philox_at(key, first + i);
    for (int w = 0; w < 4; ++w) ASSERT_EQ(out[4 * i + w], r.v[w]) << i << " " << w;
  }
  const uint32_t threshold = dropout_threshold(0.3f);
  std::vector<uint8_t> keep(1001);
  cpu::dropout_keep_mask(key, 12345, 1001, threshold, keep.data());
  for (int i = 0; i < 1001; ++i) ASSERT_EQ(keep[i] != 0, dropout_keep(key, 12345 + i, threshold)) << i;
}

}  // namespace
}  // namespace erlangshen
