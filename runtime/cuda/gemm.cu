// cuBLASLt GEMM with cached algorithm choice (see gemm.cuh).
#include "runtime/cuda/gemm.cuh"

#include <cstdio>

namespace erlangshen::cuda {
namespace {

#define ERL_LT_CHECK(expr)                                                                    \
  do {                                                                                        \
    cublasStatus_t erl_s_ = (expr);                                                           \
    ERL_CHECK(erl_s_ == CUBLAS_STATUS_SUCCESS, "cuBLASLt error " << static_cast<int>(erl_s_)  \
                                                                 << " in " #expr);            \
  } while (0)

// Largest power of two (<= 256) dividing the address: cuBLASLt algorithms require known operand alignment.
uint32_t alignment(const void* p) {
  uintptr_t a = reinterpret_cast<uintptr_t>(p);
  uint32_t al = 256;
  while (al > 4 && (a % al) != 0) al >>= 1;
  return al;
}

void make_layout(cublasLtMatrixLayout_t* layout, cudaDataType_t type, int rows, int cols, int ld, int batch,
                 int64_t stride) {
  ERL_LT_CHECK(cublasLtMatrixLayoutCreate(layout, type, rows, cols, ld));
  if (batch > 1) {
    int32_t count = batch;
    ERL_LT_CHECK(cublasLtMatrixLayoutSetAttribute(*layout, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof(count)));
    ERL_LT_CHECK(
        cublasLtMatrixLayoutSetAttribute(*layout, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof(stride)));
  }
}

// Elements from the first to the last of a column-major operand (rows x cols, leading dimension ld, `batch`
// matrices `stride` apart): what must be staged to hand cuBLASLt the same layout in bf16.
int64_t operand_span(int rows, int cols, int ld, int batch, int64_t stride) {
  return (batch > 1 ? (batch - 1) * stride : 0) + static_cast<int64_t>(cols - 1) * ld + rows;
}

bool run(const Launch& l, Context& ctx, const char* op, const GemmArgs& g, cublasComputeType_t compute,
         bool required);

// MathMode::BF16 on fp32 operands: A and B are rounded to bf16 into the Context's staging (one copy when they are
// the same tensor) and the GEMM runs on bf16 operands with fp32 accumulation and fp32 C/D. Where cuBLASLt has no
// bf16 algorithm for the layout (odd leading dimensions of small test shapes), cuBLASLt's own rounding of the
// fp32 operands (COMPUTE_32F_FAST_16BF) does the same arithmetic, slower.
bool gemm_staged_bf16(const Launch& l, Context& ctx, const char* op, const GemmArgs& g) {
  const int64_t na = operand_span(g.trans_a ? g.k : g.m, g.trans_a ? g.m : g.k, g.lda, g.batch, g.stride_a);
  const int64_t nb = operand_span(g.trans_b ? g.n : g.k, g.trans_b ? g.k : g.n, g.ldb, g.batch, g.stride_b);
  const bool same = g.A == g.B && na == nb;
  const int64_t b_offset = round_up_256(2 * na);
  auto* stage = static_cast<char*>(ctx.staging(static_cast<size_t>(b_offset + (same ? 0 : round_up_256(2 * nb)))));
  auto* a16 = reinterpret_cast<uint16_t*>(stage);
  auto* b16 = same ? a16 : reinterpret_cast<uint16_t*>(stage + b_offset);
  float_to_bf16(l, a16, static_cast<const float*>(g.A), na);
  if (!same) float_to_bf16(l, b16, static_cast<const float*>(g.B), nb);
  GemmArgs s = g;
  s.ab_type = CUDA_R_16BF;
  s.A = a16;
  s.B = b16;
  if (run(l, ctx, op, s, CUBLAS_COMPUTE_32F, false)) return true;
  return run(l, ctx, op, g, CUBLAS_COMPUTE_32F_FAST_16BF, g.epilogue == Epilogue::None);
}

// Descriptors of a configuration (the per-call bias and aux pointers are set at each call).
std::unique_ptr<Context::AlgoCache::Descriptors> make_descriptors(const GemmArgs& g, cublasComputeType_t compute) {
  auto d = std::make_unique<Context::AlgoCache::Descriptors>();
  ERL_LT_CHECK(cublasLtMatmulDescCreate(&d->op, compute, CUDA_R_32F));
  cublasOperation_t ta = g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, tb = g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  ERL_LT_CHECK(cublasLtMatmulDescSetAttribute(d->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)));
  ERL_LT_CHECK(cublasLtMatmulDescSetAttribute(d->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)));
  if (g.epilogue != Epilogue::None) {
    cublasLtEpilogue_t epi = g.epilogue == Epilogue::Bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_GELU_AUX_BIAS;
    ERL_LT_CHECK(cublasLtMatmulDescSetAttribute(d->op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof(epi)));
    if (g.epilogue == Epilogue::GeluAuxBias) {
      int64_t ld = g.ldaux;
      ERL_LT_CHECK(cublasLtMatmulDescSetAttribute(d->op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &ld, sizeof(ld)));
    }
  }
  make_layout(&d->a, g.ab_type, g.trans_a ? g.k : g.m, g.trans_a ? g.m : g.k, g.lda, g.batch, g.stride_a);
  make_layout(&d->b, g.ab_type, g.trans_b ? g.n : g.k, g.trans_b ? g.k : g.n, g.ldb, g.batch, g.stride_b);
  make_layout(&d->c, g.c_type, g.m, g.n, g.ldc, g.batch, g.stride_c);
  return d;
}

// The epilogue's per-call pointers (bias; aux for GELU_AUX_BIAS) on a cached descriptor.
void set_epilogue_pointers(cublasLtMatmulDesc_t op, const GemmArgs& g) {
  if (g.epilogue == Epilogue::None) return;
  ERL_LT_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &g.bias, sizeof(g.bias)));
  if (g.epilogue == Epilogue::GeluAuxBias)
    ERL_LT_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &g.aux, sizeof(g.aux)));
}

// One cuBLASLt call with descriptors and algorithm cached per configuration. No algorithm: throws when
// `required`, else returns false having done nothing.
bool run(const Launch& l, Context& ctx, const char* op, const GemmArgs& g, cublasComputeType_t compute,
         bool required) {
  const uint32_t al_a = alignment(g.A), al_b = alignment(g.B), al_c = alignment(g.C),
                 al_bias = g.bias ? alignment(g.bias) : 256, al_aux = g.aux ? alignment(g.aux) : 256;
  char key[256];
  std::snprintf(key, sizeof key, "%d%d %d %d %d %d %d %d %lld %lld %lld %d %d %u %u %u %u %u %d %d %d %d %d c%d",
                g.trans_a, g.trans_b, g.m, g.n, g.k, g.lda, g.ldb, g.ldc, static_cast<long long>(g.stride_a),
                static_cast<long long>(g.stride_b), static_cast<long long>(g.stride_c), g.batch,
                static_cast<int>(g.epilogue), al_a, al_b, al_c, al_bias, al_aux, static_cast<int>(ctx.math()),
                g.beta != 0.0f, g.ldaux, static_cast<int>(g.ab_type), static_cast<int>(g.c_type),
                static_cast<int>(compute));
  auto& cache = ctx.algo_cache().entries;
  auto it = cache.find(key);
  if (it == cache.end()) {
    Context::AlgoCache::Entry e;
    e.desc = make_descriptors(g, compute);
    cublasLtMatmulPreference_t pref = nullptr;
    ERL_LT_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    struct PrefGuard {
      cublasLtMatmulPreference_t p;
      ~PrefGuard() { cublasLtMatmulPreferenceDestroy(p); }
    } guard{pref};
    uint64_t ws = ctx.gemm_workspace_bytes();
    ERL_LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)));
    const std::pair<cublasLtMatmulPreferenceAttributes_t, uint32_t> aligns[] = {
        {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, al_a},
        {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, al_b},
        {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, al_c},
        {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, al_c}};
    for (const auto& [attr, value] : aligns)
      ERL_LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, attr, &value, sizeof(value)));
    if (ctx.deterministic()) {
      // Split-K reductions through the workspace (fixed order); no in-place accumulation across CTAs.
      uint32_t mask = CUBLASLT_REDUCTION_SCHEME_NONE | CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE |
                      CUBLASLT_REDUCTION_SCHEME_OUTPUT_TYPE;
      ERL_LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK, &mask,
                                                        sizeof(mask)));
    }
    set_epilogue_pointers(e.desc->op, g);  // the heuristic may look at the epilogue's pointers
    cublasLtMatmulHeuristicResult_t result{};
    int found = 0;
    cublasStatus_t s = cublasLtMatmulAlgoGetHeuristic(static_cast<cublasLtHandle_t>(ctx.cublaslt()), e.desc->op,
                                                      e.desc->a, e.desc->b, e.desc->c, e.desc->c, pref, 1, &result,
                                                      &found);
    e.ok = s == CUBLAS_STATUS_SUCCESS && found > 0;
    if (e.ok) e.algo = result.algo;
    ERL_CHECK(e.ok || !required,
              "cuda::" << op << ": cuBLASLt has no algorithm for GEMM " << key << " (status " << static_cast<int>(s)
                       << ")");
    it = cache.emplace(key, std::move(e)).first;
  }
  const Context::AlgoCache::Entry& e = it->second;
  if (!e.ok) return false;
  set_epilogue_pointers(e.desc->op, g);
  ERL_LT_CHECK(cublasLtMatmul(static_cast<cublasLtHandle_t>(ctx.cublaslt()), e.desc->op, &g.alpha, g.A, e.desc->a,
                              g.B, e.desc->b, &g.beta, g.C, e.desc->c, g.C, e.desc->c, &e.algo, ctx.gemm_workspace(),
                              ctx.gemm_workspace_bytes(), stream_of(l)));
  return true;
}

}  // namespace

bool gemm(const Launch& l, const char* op, const GemmArgs& g) {
  Context& ctx = need_context(l, op);
  if (g.m == 0 || g.n == 0) return true;
  if (g.ab_type == CUDA_R_32F && ctx.math() == MathMode::BF16) return gemm_staged_bf16(l, ctx, op, g);
  return run(l, ctx, op, g, CUBLAS_COMPUTE_32F, g.epilogue == Epilogue::None);
}

}  // namespace erlangshen::cuda
