// The shapes and inputs the fused attention kernels' tests share (test_cuda_fused_attention_forward.cpp,
// test_cuda_fused_attention_backward.cpp): a case (B, T, NH, HS, dropout p, TP offsets, a sample without a valid
// key) and its attention shape, dropout key and key-validity mask.
#pragma once
#include <gtest/gtest.h>

#include <cstdint>
#include <ostream>
#include <vector>

#include "runtime/cpu/kernels.h"
#include "runtime/philox.h"

namespace erlangshen::testing {

struct FusedCase {
  int B, T, NH, HS;
  float p;
  int64_t sample_offset;
  int head_offset, total_heads;
  bool dead_sample;  // sample 1 has no valid key at all
};

inline void PrintTo(const FusedCase& k, std::ostream* os) {
  *os << "B=" << k.B << " T=" << k.T << " NH=" << k.NH << " HS=" << k.HS << " p=" << k.p << " heads "
      << k.head_offset << "/" << k.total_heads << (k.dead_sample ? " dead sample" : "");
}

struct FusedSetup {
  cpu::AttentionShape s;
  DropoutSpec d;
  size_t C, N, TT;
  std::vector<uint8_t> valid;  // sample b: its last b * 13 % T keys padded (all of sample 1's when dead_sample)
  explicit FusedSetup(const FusedCase& k)
      : s{k.B, k.T, k.NH, k.HS, k.sample_offset, k.head_offset, k.total_heads},
        C(size_t(k.NH) * k.HS),
        N(size_t(k.B) * k.T),
        TT(size_t(k.B) * k.NH * k.T * k.T),
        valid(N, 1) {
    d.p = k.p;
    d.key = derive_key(99, RngPurpose::AttentionDropout, 5, 2, 0);
    for (int b = 0; b < k.B; ++b)
      for (int t = k.T - (b * 13) % k.T; t < k.T; ++t) valid[size_t(b) * k.T + t] = 0;
    if (k.dead_sample)
      for (int t = 0; t < k.T; ++t) valid[size_t(k.T) + t] = 0;
  }
};

}  // namespace erlangshen::testing
