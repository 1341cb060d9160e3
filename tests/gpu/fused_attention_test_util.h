// The shapes and inputs the fused attention kernels' tests share (test_cuda_fused_attention_forward.cpp,
// test_cuda_fused_attention_backward.cpp): a case (B, T, NH, HS, dropout p, TP offsets, a sample without a valid
// key) and its attention shape, dropout key and key-validity mask; one forward + backward on the GPU with chosen
// kernels, and on the CPU emulation; the dropout mask check through an output.
#pragma once
#include <gtest/gtest.h>

#include <cstdint>
#include <ostream>
#include <vector>

#include "runtime/act.h"
#include "runtime/bf16.h"
#include "runtime/cpu/kernels.h"
#include "runtime/cuda/context.h"
#include "runtime/philox.h"
#include "tests/gpu/bf16_test_util.h"
#include "tests/gpu/gpu_test_util.h"

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

// One attention forward and backward on the GPU: out, dqkv, and the saved state (the bf16 probabilities tensor: S
// and the row statistics). o: the caller's kernel choices; bf16 math, deterministic GEMMs and scores as the saved
// state are set here. bf16_io false: qkv, out, dout and dqkv in fp32 storage (the saved state bf16 either way).
struct AttentionRun {
  std::vector<float> out, dqkv;
  std::vector<bf16> saved;
};
inline AttentionRun run_attention(const FusedSetup& a, cuda::ContextOptions o, const std::vector<float>& qkv,
                                  const std::vector<float>& dout, bool bf16_io) {
  o.math = cuda::MathMode::BF16;
  o.deterministic = true;
  o.attention_saves_scores = true;
  cuda::Context ctx(o);
  const Exec g{Device::CUDA, ctx.stream(), &ctx};
  // out and dqkv start as noise: an element a kernel fails to write shows
  Stored t_qkv(qkv, bf16_io), t_out(randn(a.N * a.C, 83), bf16_io), t_dout(dout, bf16_io),
      t_dqkv(randn(a.N * 3 * a.C, 84), bf16_io);
  Dev<bf16> d_probs(std::vector<bf16>(size_t(cuda::attention_probs_elems(a.s, true)), to_bf16(0.25f)));
  Dev<uint8_t> d_valid(a.valid);
  Dev<float> d_scratch(size_t(ops::attention_scratch_elems(g, a.s)));
  const Act<float> probs = Act<float>::half(d_probs.get());
  ops::attention_forward(g, t_out.gpu(), probs, d_scratch.get(), t_qkv.gpu(), d_valid.get(), a.s, a.d);
  ops::attention_backward(g, t_dqkv.gpu(), d_scratch.get(), t_dout.gpu(), t_qkv.gpu(), probs, d_valid.get(), a.s,
                          a.d);
  ctx.synchronize();
  return AttentionRun{t_out.gpu_values(), t_dqkv.gpu_values(), d_probs.host()};
}

// The same forward and backward on the CPU emulation of bf16 storage (runtime/ops_bf16.cpp): out and dqkv.
inline AttentionRun cpu_attention(const FusedSetup& a, const std::vector<float>& qkv, const std::vector<float>& dout) {
  Stored t_qkv(qkv, true), t_out(std::vector<float>(a.N * a.C, 0.0f), true), t_dout(dout, true),
      t_dqkv(std::vector<float>(a.N * 3 * a.C, 0.0f), true), t_probs(std::vector<float>(a.TT, 0.0f), true);
  std::vector<float> scratch(size_t(ops::attention_scratch_elems(Exec{}, a.s)));
  ops::attention_forward(Exec{}, t_out.cpu(), t_probs.cpu(), scratch.data(), t_qkv.cpu(), a.valid.data(), a.s, a.d);
  ops::attention_backward(Exec{}, t_dqkv.cpu(), scratch.data(), t_dout.cpu(), t_qkv.cpu(), t_probs.cpu(),
                          a.valid.data(), a.s, a.d);
  return AttentionRun{t_out.cpu_values(), t_dqkv.cpu_values(), {}};
}

// The dropout mask bit for bit against runtime/philox.h's keep rule, read through an output that is non-zero exactly
// where key j is valid and kept for query row i: value(b, h, i, j) (`what` names it in failures). Expects some kept
// and some dropped keys.
template <class Value>
void expect_dropout_mask(const FusedCase& k, const FusedSetup& a, const char* what, Value value) {
  const uint32_t threshold = dropout_threshold(k.p);
  const int total_heads = k.total_heads > 0 ? k.total_heads : k.NH;
  size_t kept = 0, dropped = 0, wrong = 0;
  for (int b = 0; b < k.B; ++b)
    for (int h = 0; h < k.NH; ++h)
      for (int i = 0; i < k.T; ++i)
        for (int j = 0; j < k.T; ++j) {
          const uint64_t index =
              ((uint64_t(k.sample_offset + b) * total_heads + k.head_offset + h) * k.T + i) * uint64_t(k.T) + j;
          const bool valid = a.valid[size_t(b) * k.T + j] != 0, keep = dropout_keep(a.d.key, index, threshold);
          const float v = value(b, h, i, j);
          if (valid) (keep ? kept : dropped)++;
          if ((v != 0.0f) != (valid && keep) && wrong++ < 5)
            ADD_FAILURE() << "b " << b << " h " << h << " i " << i << " j " << j << ": " << what << " " << v
                          << ", key valid " << valid << ", kept " << keep;
        }
  EXPECT_EQ(wrong, 0u);
  EXPECT_GT(kept, 0u);
  EXPECT_GT(dropped, 0u);
}

}  // namespace erlangshen::testing
