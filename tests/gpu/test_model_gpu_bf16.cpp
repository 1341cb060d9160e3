// bf16 activation storage on the GPU (train.activations=bf16; runtime/act.h), whole model, small config, dropout
// on, one micro-batch forward + backward twice (gradients accumulate). Two comparisons:
//  1. Against the same GPU model with fp32 storage, both in bf16 math. bf16 math already rounds every GEMM operand,
//     so storing ln1, ln2, qkv, ctx, act, dctx, dqkv and dact in bf16 changes no GEMM input; what changes is the
//     rounded pre-activation under gelu'(pre) and the bias gradients summed over rounded values. Expected differences:
//     ~1e-3 relative in the gradients' L2 norm (each touched element moves by <= 2^-9); bounds 1e-2 and cosine 0.9999.
//  2. Against the CPU emulation (runtime/ops_bf16.cpp) of the same storage. The CPU rounds GEMM operands only in
//     the ops that touch bf16 storage, the GPU in all of them (bf16 math), so this is the bf16-math-vs-fp32 gap of
//     the other GEMMs (attention, out-projection, heads): a few 1e-3 relative; bounds 3e-2 and cosine 0.999, and
//     losses within 2e-3 relative. A wrong buffer, a skipped rounding or a missed op moves these by O(1).
//  3. A bf16 residual stream (train.residual=bf16) on top: against the GPU's fp32 stream (each residual sum rounded
//     once: a few 1e-3, bounds as in 1) and against the CPU emulation of the same storage (bounds as in 2).
// Needs the full build (model/); skips without a GPU.
#include <cmath>
#include <vector>

#include "tests/gpu/gpu_model_config.h"
#include "tests/gpu/gpu_test_util.h"
#include "tests/gpu/model_run_util.h"

namespace erlangshen::testing {
namespace {

class ModelGpuBf16 : public CudaTest {
 protected:
  void SetUp() override {
    CudaTest::SetUp();
    if (IsSkipped()) return;
    ctx_->set_math(cuda::MathMode::BF16);
  }
};

TEST_F(ModelGpuBf16, StorageAgainstFp32StorageOnTheGpu) {
  const Config c = small_gpu_model_config();
  const ModelRun half = run_model_twice(c, gpu(), ActivationStorage::BF16);
  const ModelRun full = run_model_twice(c, gpu(), ActivationStorage::FP32);
  for (size_t i = 0; i < half.losses.size(); ++i) {
    EXPECT_NEAR(half.losses[i].mlm_sum, full.losses[i].mlm_sum, 1e-3 * full.losses[i].mlm_sum);
    EXPECT_NEAR(half.losses[i].sop_sum, full.losses[i].sop_sum, 1e-3 * full.losses[i].sop_sum);
  }
  const GradientGap g = gradient_gap(half.grads, full.grads);
  EXPECT_LT(g.rel_l2, 1e-2);
  EXPECT_GT(g.cosine, 0.9999);
  std::printf("gpu bf16 vs fp32 storage: gradients %.3g relative L2, cosine %.6f\n", g.rel_l2, g.cosine);
}

TEST_F(ModelGpuBf16, StorageAgainstTheCpuEmulation) {
  const Config c = small_gpu_model_config();
  const ModelRun g16 = run_model_twice(c, gpu(), ActivationStorage::BF16);
  const ModelRun c16 = run_model_twice(c, cpu(), ActivationStorage::BF16);
  for (size_t i = 0; i < g16.losses.size(); ++i) {
    EXPECT_NEAR(g16.losses[i].mlm_sum, c16.losses[i].mlm_sum, 2e-3 * c16.losses[i].mlm_sum);
    EXPECT_NEAR(g16.losses[i].sop_sum, c16.losses[i].sop_sum, 2e-3 * c16.losses[i].sop_sum);
    EXPECT_EQ(g16.losses[i].mlm_count, c16.losses[i].mlm_count);
  }
  const GradientGap g = gradient_gap(g16.grads, c16.grads);
  EXPECT_LT(g.rel_l2, 3e-2);
  EXPECT_GT(g.cosine, 0.999);
  std::printf("gpu vs cpu, bf16 storage: gradients %.3g relative L2, cosine %.6f\n", g.rel_l2, g.cosine);
}

TEST_F(ModelGpuBf16, ResidualStreamAgainstTheFp32StreamAndTheCpuEmulation) {
  const Config c = small_gpu_model_config();
  const ModelRun g_res16 = run_model_twice(c, gpu(), ActivationStorage::BF16, AttentionKernel::Unfused,
                                           Recompute::None, ActivationStorage::BF16);
  const ModelRun g_res32 = run_model_twice(c, gpu(), ActivationStorage::BF16);
  const ModelRun c_res16 = run_model_twice(c, cpu(), ActivationStorage::BF16, AttentionKernel::Unfused,
                                           Recompute::None, ActivationStorage::BF16);
  for (size_t i = 0; i < g_res16.losses.size(); ++i) {
    EXPECT_NEAR(g_res16.losses[i].mlm_sum, g_res32.losses[i].mlm_sum, 1e-3 * g_res32.losses[i].mlm_sum);
    EXPECT_NEAR(g_res16.losses[i].mlm_sum, c_res16.losses[i].mlm_sum, 2e-3 * c_res16.losses[i].mlm_sum);
    EXPECT_NEAR(g_res16.losses[i].sop_sum, c_res16.losses[i].sop_sum, 2e-3 * c_res16.losses[i].sop_sum);
  }
  const GradientGap stream = gradient_gap(g_res16.grads, g_res32.grads), cpu_gap = gradient_gap(g_res16.grads,
                                                                                                c_res16.grads);
  EXPECT_GT(stream.rel_l2, 0.0) << "the bf16 stream had no effect";
  EXPECT_LT(stream.rel_l2, 1e-2);
  EXPECT_GT(stream.cosine, 0.9999);
  EXPECT_LT(cpu_gap.rel_l2, 3e-2);
  EXPECT_GT(cpu_gap.cosine, 0.999);
  std::printf("gpu bf16 vs fp32 residual stream: gradients %.3g relative L2; gpu vs cpu with it: %.3g, cosine %.6f\n",
              stream.rel_l2, cpu_gap.rel_l2, cpu_gap.cosine);
}

// start_gradient_accumulation() on the GPU: the layer weight-gradient GEMMs run with beta 0 on the first
// micro-batch (and the shared-dout, BGRADB and DGELU paths with it); from a gradient buffer of NaN, two micro-batches
// must give zero_grads()'s gradients bit for bit (as floats: the GEMM's 0 + x and x agree but for the sign of 0).
TEST_F(ModelGpuBf16, LazyGradientStartEqualsZeroing) {
  const Config c = small_gpu_model_config();
  for (ActivationStorage storage : {ActivationStorage::FP32, ActivationStorage::BF16}) {
    SCOPED_TRACE(activation_storage_name(storage));
    const ModelRun zeroed = run_model_twice(c, gpu(), storage);
    const ModelRun lazy = run_model_twice(c, gpu(), storage, AttentionKernel::Unfused, Recompute::None,
                                          ActivationStorage::FP32, /*lazy_start=*/true);
    ASSERT_EQ(lazy.grads.size(), zeroed.grads.size());
    size_t nan = 0, differing = 0;
    for (size_t i = 0; i < zeroed.grads.size(); ++i) {
      nan += std::isnan(lazy.grads[i]);
      differing += lazy.grads[i] != zeroed.grads[i];
    }
    EXPECT_EQ(nan, 0u) << "gradients neither zeroed nor written";
    EXPECT_EQ(differing, 0u);
  }
}

// The whole model (head dim 64, which the fused kernels take: h128 A2, seq 32) with the fused attention kernels
// that `o` turns on, against the unfused attention: the gradients move by bf16 noise (bounds as in 1.), not O(1);
// with full recompute the recomputed forward reproduces the saved state (the same gradients as without recompute,
// bit for bit). Returns the relative L2 distance of the gradients.
double fused_attention_gap(const cuda::ContextOptions& o, const Exec& unfused) {
  Config c = small_gpu_model_config();
  c.model.hidden = 128, c.model.heads = 2, c.model.ffn = 512;
  cuda::Context fused_ctx(o);
  const Exec fused{Device::CUDA, fused_ctx.stream(), &fused_ctx};
  const ModelRun f = run_model_twice(c, fused, ActivationStorage::BF16);
  const ModelRun u = run_model_twice(c, unfused, ActivationStorage::BF16);
  for (size_t i = 0; i < f.losses.size(); ++i) {
    EXPECT_NEAR(f.losses[i].mlm_sum, u.losses[i].mlm_sum, 1e-3 * u.losses[i].mlm_sum);
    EXPECT_NEAR(f.losses[i].sop_sum, u.losses[i].sop_sum, 1e-3 * u.losses[i].sop_sum);
  }
  const GradientGap g = gradient_gap(f.grads, u.grads);
  EXPECT_GT(g.rel_l2, 0.0) << "the fused kernels did not run";
  EXPECT_LT(g.rel_l2, 1e-2);
  EXPECT_GT(g.cosine, 0.9999);
  const ModelRun f_full = run_model_twice(c, fused, ActivationStorage::BF16, AttentionKernel::Unfused, Recompute::Full);
  EXPECT_EQ(f_full.grads, f.grads) << "full recompute with the fused attention";
  std::printf("gpu fused vs unfused attention: gradients %.3g relative L2, cosine %.6f\n", g.rel_l2, g.cosine);
  return g.rel_l2;
}

// ContextOptions::fused_attention_forward (train.fused_attention_forward): the attention forward in one kernel
// saving the state the unfused forward saves (test_cuda_fused_attention_forward); out differs by where P is rounded.
TEST_F(ModelGpuBf16, FusedAttentionForwardAgainstTheUnfused) {
  cuda::ContextOptions o;
  o.math = cuda::MathMode::BF16;
  o.fused_attention_forward = true;
  fused_attention_gap(o, gpu());
}

// ContextOptions::fused_attention_backward (train.fused_attention_backward): for T <= 128 the attention backward in
// one kernel from the same saved state (test_cuda_fused_attention_backward), here with the fused forward: it keeps
// dPd in fp32 where the unfused backward rounds it, so the gradients move from the fused forward's alone too.
TEST_F(ModelGpuBf16, FusedAttentionBackwardAgainstTheUnfused) {
  cuda::ContextOptions o;
  o.math = cuda::MathMode::BF16;
  o.fused_attention_forward = true;
  const double forward_only = fused_attention_gap(o, gpu());
  o.fused_attention_backward = true;
  EXPECT_NE(fused_attention_gap(o, gpu()), forward_only) << "the fused backward did not run";
}

TEST_F(ModelGpuBf16, Fp32MathIsRefusedWithAClearError) {
  ctx_->set_math(cuda::MathMode::FP32);
  const Config c = small_gpu_model_config();
  try {
    run_model_twice(c, gpu(), ActivationStorage::BF16);
    FAIL() << "bf16 storage under fp32 math must be refused";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("MathMode::BF16"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace erlangshen::testing
