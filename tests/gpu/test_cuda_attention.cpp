// CUDA vs CPU: attention forward/backward (head dim 64 and 256, padding, dropout on and off, TP offsets) and the
// dropout masks, which must agree bit for bit (same Philox rule, runtime/philox.h). Then attention on bf16
// activation storage (runtime/act.h: qkv, out, dout, dqkv in bf16) against the CPU emulation (runtime/ops_bf16.cpp)
// and against the GPU's own fp32-storage attention on the same values.
#include <memory>
#include <string>

#include "runtime/act.h"
#include "runtime/bf16.h"
#include "tests/gpu/bf16_test_util.h"
#include "tests/gpu/gpu_test_util.h"

namespace erlangshen::testing {
namespace {

struct AttnCase {
  int B, T, NH, HS;
  float p;
  int64_t sample_offset;
  int head_offset, total_heads;
};

void PrintTo(const AttnCase& k, std::ostream* os) {
  *os << "B=" << k.B << " T=" << k.T << " NH=" << k.NH << " HS=" << k.HS << " p=" << k.p
      << " sample_offset=" << k.sample_offset << " heads " << k.head_offset << "/" << k.total_heads;
}

class CudaAttention : public CudaTest, public ::testing::WithParamInterface<AttnCase> {};

// The shape, dropout and key mask of a case: sample b has b * 13 % T padded keys at the end.
struct AttnSetup {
  cpu::AttentionShape s;
  DropoutSpec d;
  size_t C, N;
  std::vector<uint8_t> valid;
  explicit AttnSetup(const AttnCase& k)
      : s{k.B, k.T, k.NH, k.HS, k.sample_offset, k.head_offset, k.total_heads},
        C(size_t(k.NH) * k.HS),
        N(size_t(k.B) * k.T),
        valid(N, 1) {
    d.p = k.p;
    d.key = derive_key(1234, RngPurpose::AttentionDropout, 7, 3, 0);
    for (int b = 0; b < k.B; ++b)
      for (int t = k.T - (b * 13) % k.T; t < k.T; ++t) valid[size_t(b) * k.T + t] = 0;
  }
  size_t probs_elems() const { return size_t(s.B) * s.NH * s.Tn * s.Tn; }
};

// Runs the CPU reference and the GPU op on the same inputs; compares probs, out and dqkv within the tolerances.
void check_against_cpu(const AttnCase& k, const Exec& g, double rtol_fwd, double rtol_bwd) {
  const AttnSetup a(k);
  const cpu::AttentionShape& s = a.s;
  const DropoutSpec& d = a.d;
  const size_t C = a.C, N = a.N;
  const auto qkv = randn(N * 3 * C, 61, 0.5f), dout = randn(N * C, 62);
  const std::vector<uint8_t>& valid = a.valid;

  std::vector<float> out_c(N * C), probs_c(size_t(k.B) * k.NH * k.T * k.T), dqkv_c(N * 3 * C);
  std::vector<float> scratch_c(cpu::attention_scratch_elems(s));
  const Exec cpu_exec{};
  ops::attention_forward(cpu_exec, out_c.data(), probs_c.data(), scratch_c.data(), qkv.data(), valid.data(), s, d);
  ops::attention_backward(cpu_exec, dqkv_c.data(), scratch_c.data(), dout.data(), qkv.data(), probs_c.data(),
                          valid.data(), s, d);

  Dev<float> d_qkv(qkv), d_dout(dout), d_out(out_c.size()), d_probs(probs_c.size()), d_dqkv(dqkv_c.size()),
      d_scratch(size_t(ops::attention_scratch_elems(g, s)));
  Dev<uint8_t> d_valid(valid);
  ops::attention_forward(g, d_out.get(), d_probs.get(), d_scratch.get(), d_qkv.get(), d_valid.get(), s, d);
  ops::attention_backward(g, d_dqkv.get(), d_scratch.get(), d_dout.get(), d_qkv.get(), d_probs.get(), d_valid.get(),
                          s, d);
  EXPECT_TRUE(close(d_probs.host(), probs_c, rtol_fwd)) << "probs";
  // A single differing dropout bit changes an output by p_ij * v / (1 - p) ~ 1e-3 of the scale: far outside 1e-5.
  EXPECT_TRUE(close(d_out.host(), out_c, rtol_fwd)) << "out";
  EXPECT_TRUE(close(d_dqkv.host(), dqkv_c, rtol_bwd)) << "dqkv";
}

TEST_P(CudaAttention, ForwardBackwardMatchCpu) { check_against_cpu(GetParam(), gpu(), kFp32Rtol, kFp32Rtol); }

// bf16 math (T and HS multiples of 8; the odd-T case runs the fp32 path and meets these bounds trivially): Q, K, V,
// dO, Pd and dS rounded to bf16 (relative error 2^-9 each), products accumulated in fp32, softmax in fp32. The
// scores' error is ~2^-8 of the natural scale sum_k |q_k k_k| / sqrt(HS); a logit error e moves a probability by
// ~e relatively, so probs and out stay within 1e-2 of the element plus the tensor's largest magnitude (as the
// bf16 matmul test). Backward chains two rounded GEMMs and the softmax Jacobian: 3e-2.
TEST_P(CudaAttention, Bf16WithinBf16Tolerance) {
  ctx_->set_math(cuda::MathMode::BF16);
  check_against_cpu(GetParam(), gpu(), 1e-2, 3e-2);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, CudaAttention,
    ::testing::Values(AttnCase{2, 128, 4, 64, 0.0f, 0, 0, 0},      // bert-base head dim, no dropout
                      AttnCase{2, 128, 4, 64, 0.1f, 5, 4, 12},     // TP shard: heads 4..7 of 12, samples from 5
                      AttnCase{2, 512, 2, 256, 0.1f, 0, 0, 0},     // 1.3B head dim at seq 512
                      AttnCase{1, 512, 8, 256, 0.1f, 3, 0, 8},     // full 1.3B head count
                      AttnCase{3, 37, 3, 64, 0.25f, 1, 1, 5},      // odd T: unaligned Philox groups
                      AttnCase{2, 200, 2, 64, 0.1f, 1, 0, 2},      // 50 groups of 4: two a lane for 18 lanes
                      AttnCase{1, 640, 2, 64, 0.1f, 2, 0, 2}),     // T > 512: 160 groups, up to 8 a lane
    [](const ::testing::TestParamInfo<AttnCase>& i) {
      const AttnCase& k = i.param;
      return "B" + std::to_string(k.B) + "_T" + std::to_string(k.T) + "_NH" + std::to_string(k.NH) + "_HS" +
             std::to_string(k.HS) + "_p" + std::to_string(static_cast<int>(k.p * 100));
    });

TEST_F(CudaTest, DropoutMasksBitForBit) {
  // dropout of ones with no residual exposes the mask: out = keep ? 1/(1-p) : 0. Odd offsets and lengths cover
  // Philox groups that straddle the slice boundaries; n = 4096 at offsets 0 and 2^33 takes the 4-wide kernels.
  for (int64_t offset : {int64_t(0), int64_t(1), int64_t(6), int64_t(1) << 33}) {
    for (int64_t n : {int64_t(1), int64_t(7), int64_t(4096), int64_t(4096 + 3)}) {
      SCOPED_TRACE(::testing::Message() << "offset=" << offset << " n=" << n);
      DropoutSpec d;
      d.p = 0.1f;
      d.key = derive_key(99, RngPurpose::HiddenDropout, 11, 2, 1);
      const std::vector<float> ones(n, 1.0f), resid = randn(n, 71);
      std::vector<float> mask_c(n), out_c(n), back_c(n);
      ops::dropout_residual_forward(cpu(), mask_c.data(), static_cast<const float*>(nullptr), ones.data(), n, d,
                                    offset);
      ops::dropout_residual_forward(cpu(), out_c.data(), resid.data(), resid.data(), n, d, offset);
      ops::dropout_backward(cpu(), back_c.data(), resid.data(), n, d, offset);
      Dev<float> d_ones(ones), d_resid(resid), d_mask(n), d_out(n), d_back(n);
      ops::dropout_residual_forward(gpu(), d_mask.get(), static_cast<const float*>(nullptr), d_ones.get(), n, d, offset);
      ops::dropout_residual_forward(gpu(), d_out.get(), d_resid.get(), d_resid.get(), n, d, offset);
      ops::dropout_backward(gpu(), d_back.get(), d_resid.get(), n, d, offset);
      EXPECT_TRUE(bit_equal(d_mask.host(), mask_c)) << "mask";
      EXPECT_TRUE(bit_equal(d_out.host(), out_c)) << "resid + dropout(x)";
      EXPECT_TRUE(bit_equal(d_back.host(), back_c)) << "backward";
    }
  }
}

TEST_F(CudaTest, AttentionDropoutMaskBitForBit) {
  // With V = one-hot rows (V[j] = e_j, HS >= T), out row i = dropout(P)[i, :] exactly (one product per element),
  // so the attention dropout mask is compared bit for bit through the op's output: in fp32 math, and in bf16
  // math, where Pd is stored in bf16 (a kept p ~ 1/64 stays far from underflow, a dropped one is exactly 0).
  for (cuda::MathMode math : {cuda::MathMode::FP32, cuda::MathMode::BF16}) {
  SCOPED_TRACE(cuda::math_mode_name(math));
  ctx_->set_math(math);
  const int B = 2, T = 64, NH = 2, HS = 64;
  cpu::AttentionShape s{B, T, NH, HS, 9, 1, 4};
  DropoutSpec d;
  d.p = 0.3f;
  d.key = derive_key(5, RngPurpose::AttentionDropout, 1, 0, 0);
  const size_t C = size_t(NH) * HS;
  auto qkv = randn(size_t(B) * T * 3 * C, 81, 0.3f);
  for (int b = 0; b < B; ++b)
    for (int j = 0; j < T; ++j)
      for (int h = 0; h < NH; ++h)
        for (int c = 0; c < HS; ++c) qkv[(size_t(b) * T + j) * 3 * C + 2 * C + h * HS + c] = c == j ? 1.0f : 0.0f;
  std::vector<uint8_t> valid(size_t(B) * T, 1);
  std::vector<float> out_c(size_t(B) * T * C), probs_c(size_t(B) * NH * T * T), scratch(cpu::attention_scratch_elems(s));
  ops::attention_forward(cpu(), out_c.data(), probs_c.data(), scratch.data(), qkv.data(), valid.data(), s, d);
  Dev<float> d_qkv(qkv), d_out(out_c.size()), d_probs(probs_c.size()),
      d_scratch(size_t(ops::attention_scratch_elems(gpu(), s)));
  Dev<uint8_t> d_valid(valid);
  ops::attention_forward(gpu(), d_out.get(), d_probs.get(), d_scratch.get(), d_qkv.get(), d_valid.get(), s, d);
  const auto out_g = d_out.host();
  size_t mismatched = 0;
  for (size_t i = 0; i < out_c.size(); ++i) mismatched += (out_c[i] == 0.0f) != (out_g[i] == 0.0f);
  EXPECT_EQ(mismatched, 0u) << "dropped positions differ between CPU and GPU";
  EXPECT_TRUE(close(out_g, out_c, math == cuda::MathMode::FP32 ? kFp32Rtol : 1e-2));
  }
}

// ---- bf16 activation storage ----
// The model with train.activations=bf16 stores qkv, ctx (= out), dctx (= dout) and dqkv in bf16. Semantics
// (runtime/act.h): bf16 inputs read exactly, fp32 attention, each bf16 output rounded once. On the GPU that is the
// bf16-math attention with the bf16 tensors read / written in place by the GEMMs (T, HS multiples of 8), or a
// fallback through fp32 copies (T = 37 here). Inputs are bf16 values (as they are when stored in bf16) in every
// storage, so the runs below see the same numbers whatever the storage.

// (a) The GPU result against the CPU emulation's, both as stored. The inputs are the same bf16 values on both sides,
// so the GPU differs from the emulation (fp32 attention) exactly as bf16 math differs from fp32
// (Bf16WithinBf16Tolerance: Pd and dS rounded to bf16 for the GEMMs; rtol 1e-2 forward, 3e-2 backward), and where
// the tensor is stored in bf16 each side then rounds its value once: one bf16 ulp more at most (half an ulp each
// way, of the larger value when the rounding crosses a power of two), as test_cuda_bf16_storage's bf16 results.
::testing::AssertionResult matches_cpu(const Stored& t, double rtol) {
  const auto g = t.gpu_values(), c = t.cpu_values();
  return t.is_bf16() ? close_ulp(g, c, 1.0, rtol) : close(g, c, rtol);
}

// (b) The GPU result against the GPU's fp32-storage attention on the same values (`fp32`). Both runs form the same
// bf16 operands (the fp32-storage run rounds values that already are bf16: no change) and the same products; the
// S and dPd GEMMs, the row kernels and every GEMM with an fp32 result run the same cuBLASLt configuration (same
// shapes, types and operand alignments: see the premise in the test) in a deterministic Context, so probs, Pd, dS
// and fp32-stored results are the same bits. A GEMM writing bf16 D is another configuration (the output type), which
// may sum in another order: a bf16-stored result is within half an ulp (one rounding) of the fp32 one plus that
// fp32 reordering, < 1e-5 of the tensor's scale (K <= 640 products; test_cuda_bf16_storage's bound).
::testing::AssertionResult one_rounding_of(const Stored& t, const std::vector<float>& fp32) {
  return t.is_bf16() ? close_ulp(t.gpu_values(), fp32, 0.5, kFp32Rtol) : bit_equal(t.gpu_values(), fp32);
}

// Which tensors are stored in bf16.
struct AttnStorage {
  bool qkv, out, dout, dqkv, probs;
  const char* name;
};
const AttnStorage kAttnStorages[] = {
    {true, true, true, true, true, "all bf16 (the model's train.activations=bf16)"},
    {true, true, true, true, false, "all bf16 but probs"},
    {true, false, false, false, false, "qkv bf16, the rest fp32"},
    {false, true, true, true, false, "qkv fp32, out / dout / dqkv bf16"},
    {false, false, false, false, true, "probs bf16, the rest fp32"},
};

// A Context for bf16 storage (MathMode::BF16) whose GEMMs are bitwise reproducible (no split-K atomics), so that
// two runs of one configuration give the same bits. The tests that use it read the saved probabilities, so P is
// saved (not S: saves_scores, as in SavedScoresGiveTheSameBits).
std::unique_ptr<cuda::Context> deterministic_bf16_context(bool saves_scores = false) {
  cuda::ContextOptions o;
  o.math = cuda::MathMode::BF16;
  o.deterministic = true;
  o.attention_saves_scores = saves_scores;
  return std::make_unique<cuda::Context>(o);
}

// ContextOptions::attention_saves_scores (the default): with bf16 storage the forward saves S and each row's (max,
// 1 / sum) in place of P, and the backward recomputes P from them as the forward formed it. Every output must be
// the bits of saving P (dropout, padded keys, TP offsets); where the register row kernels do not run (T = 37) both
// save P. The probs tensor is sized by attention_probs_elems (the row statistics after the scores).
TEST_P(CudaAttention, SavedScoresGiveTheSameBits) {
  const AttnCase& k = GetParam();
  const AttnSetup a(k);
  const size_t C = a.C, N = a.N;
  const auto qkv = bf16_values(randn(N * 3 * C, 71, 0.5f)), dout = bf16_values(randn(N * C, 72));
  Dev<uint8_t> d_valid(a.valid);
  auto run = [&](bool saves_scores) {
    const auto ctx = deterministic_bf16_context(saves_scores);
    const Exec g{Device::CUDA, ctx->stream(), ctx.get()};
    const size_t P = size_t(cuda::attention_probs_elems(a.s, true));
    Stored t_qkv(qkv, true), t_out(randn(N * C, 73), true), t_dout(dout, true), t_dqkv(randn(N * 3 * C, 74), true),
        t_probs(std::vector<float>(P, 0.25f), true);
    Dev<float> d_scratch(size_t(ops::attention_scratch_elems(g, a.s)));
    ops::attention_forward(g, t_out.gpu(), t_probs.gpu(), d_scratch.get(), t_qkv.gpu(), d_valid.get(), a.s, a.d);
    ops::attention_backward(g, t_dqkv.gpu(), d_scratch.get(), t_dout.gpu(), t_qkv.gpu(), t_probs.gpu(),
                            d_valid.get(), a.s, a.d);
    ctx->synchronize();
    return std::make_pair(t_out.gpu_values(), t_dqkv.gpu_values());
  };
  const auto scores = run(true), probs = run(false);
  EXPECT_TRUE(bit_equal(scores.first, probs.first)) << "out";
  EXPECT_TRUE(bit_equal(scores.second, probs.second)) << "dqkv";
}

TEST_P(CudaAttention, Bf16StorageMatchesCpuEmulationAndFp32Storage) {
  const AttnCase& k = GetParam();
  const auto bctx = deterministic_bf16_context();
  const Exec g{Device::CUDA, bctx->stream(), bctx.get()};
  const AttnSetup a(k);
  const cpu::AttentionShape& s = a.s;
  const size_t C = a.C, N = a.N, P = a.probs_elems(), scratch_n = size_t(ops::attention_scratch_elems(g, s));
  const auto qkv = bf16_values(randn(N * 3 * C, 61, 0.5f)), dout = bf16_values(randn(N * C, 62));
  const auto junk_out = randn(N * C, 63), junk_dqkv = randn(N * 3 * C, 64);  // outputs start as junk: overwritten
  // Premise of (b)'s bit comparisons on the in-place path: the bf16 tensors here come from cudaMalloc (256-byte
  // aligned), as do the scratch buffers, in which the fp32-storage run keeps its qkv16 copy 8 B NH T^2 bytes in
  // (a multiple of 256 for T % 8 == 0) and its dO16 copy 6 N C bytes further: that must keep the alignment too,
  // else the dPd / dV GEMMs would read dO at another alignment (maybe another algorithm, other sums).
  if (k.T % 8 == 0 && k.HS % 8 == 0) {
    ASSERT_EQ((8 * P + 6 * N * C) % 256, 0u) << "test premise: dO16 slot alignment (pick another shape)";
  }

  // The GPU's fp32-storage attention (bf16 math) on the same values.
  Dev<float> d_qkv32(qkv), d_dout32(dout), d_out32(N * C), d_probs32(P), d_dqkv32(N * 3 * C), d_scratch32(scratch_n);
  Dev<uint8_t> d_valid(a.valid);
  ops::attention_forward(g, d_out32.get(), d_probs32.get(), d_scratch32.get(), d_qkv32.get(), d_valid.get(), s, a.d);
  ops::attention_backward(g, d_dqkv32.get(), d_scratch32.get(), d_dout32.get(), d_qkv32.get(), d_probs32.get(),
                          d_valid.get(), s, a.d);
  const auto out32 = d_out32.host(), probs32 = d_probs32.host(), dqkv32 = d_dqkv32.host();

  for (const AttnStorage& st : kAttnStorages) {
    SCOPED_TRACE(st.name);
    Stored t_qkv(qkv, st.qkv), t_out(junk_out, st.out), t_dout(dout, st.dout), t_dqkv(junk_dqkv, st.dqkv),
        t_probs(std::vector<float>(P, 0.25f), st.probs);
    // CPU: the emulation, through ops:: with the same Act arguments.
    std::vector<float> scratch_c(size_t(ops::attention_scratch_elems(cpu(), s)));
    ops::attention_forward(cpu(), t_out.cpu(), t_probs.cpu(), scratch_c.data(), t_qkv.cpu(), a.valid.data(), s, a.d);
    ops::attention_backward(cpu(), t_dqkv.cpu(), scratch_c.data(), t_dout.cpu(), t_qkv.cpu(), t_probs.cpu(),
                            a.valid.data(), s, a.d);
    Dev<float> d_scratch(scratch_n);
    ops::attention_forward(g, t_out.gpu(), t_probs.gpu(), d_scratch.get(), t_qkv.gpu(), d_valid.get(), s, a.d);
    ops::attention_backward(g, t_dqkv.gpu(), d_scratch.get(), t_dout.gpu(), t_qkv.gpu(), t_probs.gpu(),
                            d_valid.get(), s, a.d);
    // (a) against the CPU emulation
    EXPECT_TRUE(matches_cpu(t_probs, 1e-2)) << "probs vs CPU";
    EXPECT_TRUE(matches_cpu(t_out, 1e-2)) << "out vs CPU";
    EXPECT_TRUE(matches_cpu(t_dqkv, 3e-2)) << "dqkv vs CPU";
    // (b) against fp32 storage on the GPU. bf16 probs come from bf16 scores (where the bf16 operands run: T and HS
    // multiples of 8) and Pd from the rounded P, other values than the fp32 run's: compared in (a) only.
    if (st.probs) continue;
    EXPECT_TRUE(one_rounding_of(t_probs, probs32)) << "probs vs fp32 storage";
    EXPECT_TRUE(one_rounding_of(t_out, out32)) << "out vs fp32 storage";
    EXPECT_TRUE(one_rounding_of(t_dqkv, dqkv32)) << "dqkv vs fp32 storage";
  }
}

TEST_F(CudaTest, AttentionDropoutMaskBitForBitBf16Storage) {
  // (c) AttentionDropoutMaskBitForBit with qkv and out in bf16: V = one-hot rows (exact in bf16), so out row i =
  // dropout(P)[i, :] as bf16 values (the GPU's Pd16 exactly; the CPU's fp32 Pd rounded once). The dropped positions
  // (exact zeros) must be the CPU's, and the out bits those of the GPU's fp32-storage run on the same values: its
  // out is Pd16 exactly (one product per element), which the bf16 D rounds to itself.
  const auto bctx = deterministic_bf16_context();
  const Exec g{Device::CUDA, bctx->stream(), bctx.get()};
  const int B = 2, T = 64, NH = 2, HS = 64;
  cpu::AttentionShape s{B, T, NH, HS, 9, 1, 4};
  DropoutSpec d;
  d.p = 0.3f;
  d.key = derive_key(5, RngPurpose::AttentionDropout, 1, 0, 0);
  const size_t C = size_t(NH) * HS, P = size_t(B) * NH * T * T;
  auto qkv = bf16_values(randn(size_t(B) * T * 3 * C, 81, 0.3f));
  for (int b = 0; b < B; ++b)
    for (int j = 0; j < T; ++j)
      for (int h = 0; h < NH; ++h)
        for (int c = 0; c < HS; ++c) qkv[(size_t(b) * T + j) * 3 * C + 2 * C + h * HS + c] = c == j ? 1.0f : 0.0f;
  const std::vector<uint8_t> valid(size_t(B) * T, 1);
  Stored t_qkv(qkv, true), t_out(std::vector<float>(size_t(B) * T * C, 0.5f), true);
  std::vector<float> probs_c(P), scratch_c(size_t(ops::attention_scratch_elems(cpu(), s)));
  ops::attention_forward(cpu(), t_out.cpu(), probs_c.data(), scratch_c.data(), t_qkv.cpu(), valid.data(), s, d);
  const size_t scratch_n = size_t(ops::attention_scratch_elems(g, s));
  Dev<float> d_probs(P), d_scratch(scratch_n), d_qkv32(qkv), d_out32(size_t(B) * T * C), d_probs32(P),
      d_scratch32(scratch_n);
  Dev<uint8_t> d_valid(valid);
  ops::attention_forward(g, t_out.gpu(), d_probs.get(), d_scratch.get(), t_qkv.gpu(), d_valid.get(), s, d);
  ops::attention_forward(g, d_out32.get(), d_probs32.get(), d_scratch32.get(), d_qkv32.get(), d_valid.get(), s, d);
  const auto out_g = t_out.gpu_values(), out_c = t_out.cpu_values();
  size_t mismatched = 0, dropped = 0;
  for (size_t i = 0; i < out_c.size(); ++i) {
    mismatched += (out_c[i] == 0.0f) != (out_g[i] == 0.0f);
    dropped += out_g[i] == 0.0f;
  }
  EXPECT_EQ(mismatched, 0u) << "dropped positions differ between CPU and GPU";
  EXPECT_GT(dropped, out_c.size() / 10) << "p = 0.3 should drop about 30% of the positions";
  EXPECT_TRUE(close_ulp(out_g, out_c, 1.0, 1e-2));
  EXPECT_TRUE(bit_equal(out_g, d_out32.host())) << "bf16 storage vs fp32 storage on the GPU";

  // With the probabilities stored in bf16 too, out row i is dropout of the stored (rounded) P row, rounded once:
  // out[b, i, h, j] = keep ? bf16(P16[b, h, i, j] * (1 / (1 - p))) : 0, bit for bit, the keep bits the CPU's.
  Dev<bf16> d_probs16{std::vector<bf16>(P)};
  Stored t_out16(std::vector<float>(size_t(B) * T * C, 0.5f), true);
  ops::attention_forward(g, t_out16.gpu(), Act<float>::half(d_probs16.get()), d_scratch.get(), t_qkv.gpu(),
                         d_valid.get(), s, d);
  const auto out16 = t_out16.gpu_values();
  const auto probs16 = widen(d_probs16.host());
  const float scale = 1.0f / (1.0f - d.p);
  std::vector<float> want(out16.size());
  for (int b = 0; b < B; ++b)
    for (int i = 0; i < T; ++i)
      for (int h = 0; h < NH; ++h)
        for (int j = 0; j < HS; ++j) {  // HS == T: V row j is the one-hot e_j
          const size_t o = (size_t(b) * T + i) * C + size_t(h) * HS + j;
          const float pij = probs16[((size_t(b) * NH + h) * T + i) * T + j];
          want[o] = out_c[o] == 0.0f ? 0.0f : to_float(to_bf16(pij * scale));
        }
  EXPECT_TRUE(bit_equal(out16, want)) << "out = dropout(P as stored in bf16), rounded once";
}

// Under bf16 storage the scores are the QK^T GEMM's output rounded to bf16, and the softmax runs in fp32 on those:
// stored P = bf16(softmax(bf16(S))). Logits up to ~20 built from bf16-exact q and k (S itself needs ~14 bits, so its
// rounding moves it by up to 2^-9 |S|, P by a few per cent): P must be within an ulp of the softmax of the rounded
// scores, and that must be measurably apart from the softmax of the exact ones (or this test could not tell).
TEST_F(CudaTest, AttentionBf16ScoresRoundedBeforeTheSoftmax) {
  const auto bctx = deterministic_bf16_context();
  const Exec g{Device::CUDA, bctx->stream(), bctx.get()};
  const int B = 1, T = 64, NH = 1, HS = 64, C = NH * HS;
  const cpu::AttentionShape s{B, T, NH, HS};
  std::vector<float> qkv(size_t(T) * 3 * C, 0.0f);
  for (int t = 0; t < T; ++t) {
    qkv[size_t(t) * 3 * C] = 16.0f * (1.0f + t / 64.0f);         // q_t = a_t e_0
    qkv[size_t(t) * 3 * C + C] = 3.0f + t / 32.0f;               // k_t = c_t e_0
    qkv[size_t(t) * 3 * C + 2 * C + t % HS] = 1.0f;              // v: one-hot
  }
  Stored t_qkv(qkv, true), t_out(std::vector<float>(size_t(T) * C), true);
  Dev<bf16> d_probs{std::vector<bf16>(size_t(T) * T)};
  Dev<float> d_scratch(size_t(ops::attention_scratch_elems(g, s)));
  Dev<uint8_t> d_valid(std::vector<uint8_t>(T, 1));
  ops::attention_forward(g, t_out.gpu(), Act<float>::half(d_probs.get()), d_scratch.get(), t_qkv.gpu(), d_valid.get(),
                         s, DropoutSpec{});
  const auto probs = widen(d_probs.host());
  size_t far_from_exact = 0;
  std::vector<float> want(probs.size());
  for (int i = 0; i < T; ++i) {
    std::vector<double> rounded(T), exact(T);
    double mr = -1e300, me = -1e300, sr = 0, se = 0;
    for (int j = 0; j < T; ++j) {
      const float sc = qkv[size_t(i) * 3 * C] * qkv[size_t(j) * 3 * C + C] / 8.0f;  // exact in fp32; / sqrt(HS)
      exact[j] = sc;
      rounded[j] = to_float(to_bf16(sc));
      mr = std::max(mr, rounded[j]), me = std::max(me, exact[j]);
    }
    for (int j = 0; j < T; ++j) sr += std::exp(rounded[j] - mr), se += std::exp(exact[j] - me);
    for (int j = 0; j < T; ++j) {
      want[size_t(i) * T + j] = static_cast<float>(std::exp(rounded[j] - mr) / sr);
      const double e = std::exp(exact[j] - me) / se, got = probs[size_t(i) * T + j];
      far_from_exact += std::fabs(got - e) > 4 * bf16_ulp(e) + 1e-6;
    }
  }
  EXPECT_TRUE(close_ulp(probs, want, 1.0, 1e-6)) << "stored P against softmax(bf16(S))";
  EXPECT_GT(far_from_exact, probs.size() / 20) << "the exact scores' softmax is as close: the test cannot tell";
}

TEST_F(CudaTest, AttentionBf16StorageErrors) {
  const int B = 1, T = 16, NH = 2, HS = 16;
  const cpu::AttentionShape s{B, T, NH, HS};
  DropoutSpec d;  // no dropout
  const size_t C = size_t(NH) * HS, N = size_t(B) * T;
  // Zeros, 8 spare elements: the misaligned views below stay inside their buffers.
  Dev<bf16> qkv(std::vector<bf16>(N * 3 * C + 8)), out(std::vector<bf16>(N * C + 8)),
      dqkv(std::vector<bf16>(N * 3 * C + 8));
  Dev<float> probs(size_t(B) * NH * T * T), scratch(size_t(ops::attention_scratch_elems(gpu(), s)));
  Dev<uint8_t> valid(N, 1);
  auto forward = [&](bf16* o, const bf16* q) {
    ops::attention_forward(gpu(), Act<float>::half(o), probs.get(), scratch.get(), Act<const float>::half(q),
                           valid.get(), s, d);
  };
  auto backward = [&](bf16* dq, const bf16* dO, const bf16* q) {
    ops::attention_backward(gpu(), Act<float>::half(dq), scratch.get(), Act<const float>::half(dO),
                            Act<const float>::half(q), probs.get(), valid.get(), s, d);
  };
  // The fixture's Context computes in MathMode::FP32: bf16 storage is refused, naming the mode it needs.
  for (int pass = 0; pass < 2; ++pass) {
    try {
      if (pass == 0) forward(out.get(), qkv.get());
      else backward(dqkv.get(), out.get(), qkv.get());
      ADD_FAILURE() << "bf16 storage under MathMode::FP32 did not throw (pass " << pass << ")";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("MathMode::BF16"), std::string::npos) << e.what();
    }
  }
  // MathMode::BF16, T and HS multiples of 8 (bf16 tensors read and written in place): they must be 16-byte aligned.
  ctx_->set_math(cuda::MathMode::BF16);
  EXPECT_THROW(forward(out.get() + 1, qkv.get()), Error);
  EXPECT_THROW(forward(out.get(), qkv.get() + 1), Error);
  EXPECT_THROW(backward(dqkv.get() + 1, out.get(), qkv.get()), Error);
  EXPECT_NO_THROW(forward(out.get(), qkv.get()));
  EXPECT_NO_THROW(backward(dqkv.get(), out.get(), qkv.get()));
  sync();
}

}  // namespace
}  // namespace erlangshen::testing
