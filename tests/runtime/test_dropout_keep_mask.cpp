// DropoutSpec::keep_mask: forward stores the keep decisions, backward reads them instead of redrawing Philox.
// Both paths must give the same bits (the stored mask is a cache, never a different mask), and the stored bytes
// must be exactly the Philox decisions of runtime/philox.h's scalar dropout_keep().
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "runtime/cpu/kernels.h"
#include "runtime/philox.h"

namespace erlangshen::cpu {
namespace {

std::vector<float> random_floats(size_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(gen);
  return v;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST(DropoutKeepMask, ResidualForwardAndBackwardMatchTheRedraw) {
  const int64_t n = 5000;  // > one 2048-element chunk, not a multiple of it
  const int64_t offset = 123457;  // not a multiple of 4: chunks start mid-Philox-block
  const std::vector<float> x = random_floats(n, 1), res = random_floats(n, 2), dout = random_floats(n, 3);
  DropoutSpec redraw{derive_key(9, RngPurpose::HiddenDropout, 5, 2, 1), 0.1f};
  std::vector<uint8_t> mask(n, 7);
  DropoutSpec stored = redraw;
  stored.keep_mask = mask.data();

  std::vector<float> out_a(n), out_b(n), dx_a(n), dx_b(n);
  dropout_residual_forward(out_a.data(), res.data(), x.data(), n, redraw, offset);
  dropout_residual_forward(out_b.data(), res.data(), x.data(), n, stored, offset);
  EXPECT_TRUE(same_bits(out_a, out_b));
  const uint32_t threshold = dropout_threshold(redraw.p);
  int64_t kept = 0;
  for (int64_t i = 0; i < n; ++i) {
    ASSERT_EQ(mask[i], dropout_keep(redraw.key, static_cast<uint64_t>(offset + i), threshold) ? 1 : 0) << i;
    kept += mask[i];
  }
  EXPECT_NEAR(static_cast<double>(kept) / n, 0.9, 0.02);

  dropout_backward(dx_a.data(), dout.data(), n, redraw, offset);
  std::fill(mask.begin(), mask.end(), uint8_t{1});  // backward must read the mask, not redraw
  dropout_backward(dx_b.data(), dout.data(), n, stored, offset);
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(dx_b[i], dout[i] * (1.0f / (1.0f - 0.1f))) << i;
  dropout_residual_forward(out_b.data(), res.data(), x.data(), n, stored, offset);  // restores the true mask
  dropout_backward(dx_b.data(), dout.data(), n, stored, offset);
  EXPECT_TRUE(same_bits(dx_a, dx_b));
}

TEST(DropoutKeepMask, AttentionForwardAndBackwardMatchTheRedraw) {
  AttentionShape s{3, 37, 2, 8, 5, 2, 6};  // B, T, NH, HS; samples from 5, heads 2..3 of 6
  const int C = s.NH * s.HS;
  const int64_t probs_n = static_cast<int64_t>(s.B) * s.NH * s.Tn * s.Tn;
  std::vector<uint8_t> valid(static_cast<size_t>(s.B) * s.Tn, 1);
  for (int t = 30; t < s.Tn; ++t) valid[t] = 0;  // padding in sample 0
  const std::vector<float> qkv = random_floats(static_cast<size_t>(s.B) * s.Tn * 3 * C, 4);
  const std::vector<float> dout = random_floats(static_cast<size_t>(s.B) * s.Tn * C, 5);
  DropoutSpec redraw{derive_key(11, RngPurpose::AttentionDropout, 3, 1, 0), 0.2f};
  std::vector<uint8_t> mask(probs_n, 7);
  DropoutSpec stored = redraw;
  stored.keep_mask = mask.data();

  std::vector<float> out_a(dout.size()), out_b(dout.size()), probs_a(probs_n), probs_b(probs_n);
  std::vector<float> scratch(attention_scratch_elems(s));
  attention_forward(out_a.data(), probs_a.data(), scratch.data(), qkv.data(), valid.data(), s, redraw);
  attention_forward(out_b.data(), probs_b.data(), scratch.data(), qkv.data(), valid.data(), s, stored);
  EXPECT_TRUE(same_bits(out_a, out_b));
  EXPECT_TRUE(same_bits(probs_a, probs_b));
  // element (b, h, i, j) of the mask is the decision for global index ((sample_offset + b) * total_heads +
  // head_offset + h) * T*T + i*T + j
  const uint32_t threshold = dropout_threshold(redraw.p);
  const int64_t TT = static_cast<int64_t>(s.Tn) * s.Tn;
  for (int b = 0; b < s.B; ++b)
    for (int h = 0; h < s.NH; ++h)
      for (int64_t e = 0; e < TT; ++e) {
        const uint64_t global = static_cast<uint64_t>((s.sample_offset + b) * s.total_heads + s.head_offset + h) * TT + e;
        ASSERT_EQ(mask[(b * s.NH + h) * TT + e], dropout_keep(redraw.key, global, threshold) ? 1 : 0);
      }

  std::vector<float> dqkv_a(qkv.size()), dqkv_b(qkv.size());
  attention_backward(dqkv_a.data(), scratch.data(), dout.data(), qkv.data(), probs_a.data(), valid.data(), s, redraw);
  attention_backward(dqkv_b.data(), scratch.data(), dout.data(), qkv.data(), probs_b.data(), valid.data(), s, stored);
  EXPECT_TRUE(same_bits(dqkv_a, dqkv_b));
  std::fill(mask.begin(), mask.end(), uint8_t{1});  // a mask of all-keep must change the gradient: it is read
  attention_backward(dqkv_b.data(), scratch.data(), dout.data(), qkv.data(), probs_b.data(), valid.data(), s, stored);
  EXPECT_FALSE(same_bits(dqkv_a, dqkv_b));
}

}  // namespace
}  // namespace erlangshen::cpu
