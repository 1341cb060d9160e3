// cuBLASLt GEMM with cached algorithm choice (see gemm.cuh).
#include "runtime/cuda/gemm.cuh"

#include <cstdio>

#include "runtime/cuda/activation.cuh"
#include "runtime/cuda/op_profiler.h"

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
  while (al > 2 && (a % al) != 0) al >>= 1;
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

constexpr int kThreads = 256;

// dst (n, fp32) = the bf16 value of src: an fp32 src rounded to nearest even, a bf16 src widened (exact). The
// operands of the SGEMM fallback: a product of two bf16 values is exact in fp32, so SGEMM on these forms the same
// products as the bf16 tensor cores.
template <class T>
__global__ void bf16_values_kernel(float* dst, const T* src, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    dst[i] = __bfloat162float(__float2bfloat16_rn(to_f32(src[i])));
}

// The operands a GEMM runs on, and an fp32 C temporary, carved from one staging request:
//   [A copy][B copy][C temporary (m x n x batch, packed, fp32)]     each slot 256-byte aligned, present only if needed
// as = CUDA_R_16BF: fp32 operands rounded to bf16, bf16 operands read in place. as = CUDA_R_32F: every operand as
// fp32 holding its bf16 values (bf16_values_kernel). A and B that are the same tensor get one copy.
struct Staged {
  const void* A;
  const void* B;
  float* C;              // the temporary, when asked for
  const void* bias16;    // the bias rounded to bf16, when asked for
};

// ... and, with `bias16`, [bias rounded to bf16 (m)] after them.
Staged stage(const Launch& l, Context& ctx, const char* op, const GemmArgs& g, cudaDataType_t as, bool temp_c,
             bool bias16 = false) {
  const int64_t na = operand_span(g.trans_a ? g.k : g.m, g.trans_a ? g.m : g.k, g.lda, g.batch, g.stride_a);
  const int64_t nb = operand_span(g.trans_b ? g.n : g.k, g.trans_b ? g.k : g.n, g.ldb, g.batch, g.stride_b);
  const bool copy_a = as == CUDA_R_32F || g.a_type == CUDA_R_32F, copy_b = as == CUDA_R_32F || g.b_type == CUDA_R_32F;
  const bool same = copy_a && copy_b && g.A == g.B && g.a_type == g.b_type && na == nb;
  const int64_t elem = as == CUDA_R_16BF ? 2 : 4;
  const int64_t b_offset = copy_a ? round_up_256(elem * na) : 0;
  const int64_t c_offset = b_offset + (copy_b && !same ? round_up_256(elem * nb) : 0);
  const int64_t bias_offset = c_offset + (temp_c ? round_up_256(4 * static_cast<int64_t>(g.m) * g.n * g.batch) : 0);
  const int64_t bytes = bias_offset + (bias16 ? round_up_256(2 * static_cast<int64_t>(g.m)) : 0);
  Staged s{g.A, g.B, nullptr, nullptr};
  if (bytes == 0) return s;
  ERL_CHECK(!ctx.in_staging(g.A) && !ctx.in_staging(g.B),
            "cuda::" << op << ": a GEMM operand lives in the Context's staging, which this GEMM re-carves (no cuBLASLt "
                        "algorithm for a GEMM whose operands the caller staged: see gemm.cuh)");
  char* base = static_cast<char*>(ctx.staging(static_cast<size_t>(bytes)));
  auto copy = [&](char* dst, const void* src, cudaDataType_t type, int64_t n) {
    if (as == CUDA_R_16BF) {
      float_to_bf16(l, reinterpret_cast<uint16_t*>(dst), static_cast<const float*>(src), n);
      return;
    }
    float* d = reinterpret_cast<float*>(dst);
    const unsigned grid = grid_for(n, kThreads);
    if (type == CUDA_R_16BF)
      ERL_KERNEL(grid, kThreads, 0, stream_of(l), bf16_values_kernel)(d, static_cast<const __nv_bfloat16*>(src), n);
    else
      ERL_KERNEL(grid, kThreads, 0, stream_of(l), bf16_values_kernel)(d, static_cast<const float*>(src), n);
    ERL_CUDA_LAUNCHED();
  };
  if (copy_a) {
    copy(base, g.A, g.a_type, na);
    s.A = base;
  }
  if (same) {
    s.B = s.A;
  } else if (copy_b) {
    copy(base + b_offset, g.B, g.b_type, nb);
    s.B = base + b_offset;
  }
  if (temp_c) s.C = reinterpret_cast<float*>(base + c_offset);
  if (bias16) {
    float_to_bf16(l, reinterpret_cast<uint16_t*>(base + bias_offset), static_cast<const float*>(g.bias), g.m);
    s.bias16 = base + bias_offset;
  }
  return s;
}

// g on the staged operands, both of type `as`.
GemmArgs on_operands(const GemmArgs& g, const Staged& s, cudaDataType_t as) {
  GemmArgs t = g;
  t.A = s.A, t.B = s.B;
  t.a_type = t.b_type = as;
  return t;
}

// g without its epilogue and with an fp32 C: the temporary `temp` (packed), or C itself when it is fp32.
GemmArgs fp32_c_only(const GemmArgs& g, float* temp) {
  GemmArgs t = g;
  t.epilogue = Epilogue::None;
  t.bias = nullptr;
  t.aux = nullptr;
  t.ldaux = 0;
  t.c_type = CUDA_R_32F;
  if (temp) {
    t.C = temp;
    t.ldc = g.m;
    t.stride_c = static_cast<int64_t>(g.m) * g.n;
  }
  return t;
}

// cuBLASLt's documented limits of an epilogue (the aux leading dimension of GELU_AUX_BIAS a multiple of 8).
bool lt_epilogue_ok(const GemmArgs& g) {
  if (g.epilogue == Epilogue::GeluExactAuxBias) return false;  // not a cuBLASLt epilogue
  return (g.epilogue != Epilogue::GeluAuxBias && g.epilogue != Epilogue::DGelu) || g.ldaux % 8 == 0;
}

// Whether the epilogue adds a bias (and so reads CUBLASLT_MATMUL_DESC_BIAS_POINTER).
bool has_bias(Epilogue e) {
  return e == Epilogue::Bias || e == Epilogue::GeluAuxBias || e == Epilogue::GeluExactAuxBias;
}
// Whether CUBLASLT_MATMUL_DESC_BIAS_POINTER is set: a bias to add, or a bias gradient to write.
bool uses_bias_pointer(Epilogue e) { return has_bias(e) || e == Epilogue::BiasGradB; }

bool gelu_epilogue(Epilogue e) { return e == Epilogue::GeluAuxBias || e == Epilogue::GeluExactAuxBias; }

// The epilogue and the rounding of C that cuBLASLt did not do, one element-wise pass (activation.cuh) over the fp32
// GEMM result x (packed m x n x batch; C itself when C is fp32):
//   None: C = x (rounded: bf16 C only);  Bias: C = x + bias[row];
//   Gelu(Exact)AuxBias: aux = x + bias[row], C = gelu(that), tanh or exact
template <class T>
void finish_as(const Launch& l, const GemmArgs& g, const float* x) {
  const int64_t total = static_cast<int64_t>(g.m) * g.n * g.batch;
  const unsigned grid = grid_for(total, kThreads);
  T* c = static_cast<T*>(g.C);
  const float* bias = static_cast<const float*>(g.bias);  // the caller's fp32 bias (a bf16 C rounds it: activation.cuh)
  if (gelu_epilogue(g.epilogue))
    ERL_KERNEL(grid, kThreads, 0, stream_of(l), bias_gelu_store_kernel)(c, static_cast<T*>(g.aux), x, bias, total, g.m,
                                                                g.epilogue == Epilogue::GeluAuxBias);
  else
    ERL_KERNEL(grid, kThreads, 0, stream_of(l), bias_store_kernel)(c, x, bias, total, g.m);
  ERL_CUDA_LAUNCHED();
}

// Whether C needs finish() after a GEMM without epilogue into fp32; checks that it can have it (packed C and aux;
// a bf16 C overwritten, beta = 0: the temporary does not hold C's old values).
bool needs_finish(const char* op, const GemmArgs& g) {
  if (g.epilogue == Epilogue::None && g.c_type == CUDA_R_32F) return false;  // the GEMM writes C itself
  ERL_CHECK(g.ldc == g.m && (g.batch == 1 || g.stride_c == static_cast<int64_t>(g.m) * g.n) &&
                (!gelu_epilogue(g.epilogue) || (g.ldaux == g.m && g.batch == 1)) &&
                (g.c_type == CUDA_R_32F || g.beta == 0.0f),
            "cuda::" << op << ": the GEMM epilogue fallback needs a packed C (and aux), overwritten when bf16");
  return true;
}

void finish(const Launch& l, const GemmArgs& g, const float* x) {
  if (g.c_type == CUDA_R_16BF) finish_as<__nv_bfloat16>(l, g, x);
  else finish_as<float>(l, g, x);
}

// fp32 A, B and C under MathMode::BF16: A and B are rounded to bf16 into the Context's staging (one copy when they
// are the same tensor) and the GEMM runs on bf16 operands with fp32 accumulation and fp32 C/D. Where cuBLASLt has
// no bf16 algorithm for the layout (odd leading dimensions of small test shapes), cuBLASLt's own rounding of the
// fp32 operands (COMPUTE_32F_FAST_16BF) does the same arithmetic, slower.
bool gemm_staged_bf16(const Launch& l, Context& ctx, const char* op, const GemmArgs& g) {
  const Staged s = stage(l, ctx, op, g, CUDA_R_16BF, false);
  if (run(l, ctx, op, on_operands(g, s, CUDA_R_16BF), CUBLAS_COMPUTE_32F, false)) return true;
  return run(l, ctx, op, g, CUBLAS_COMPUTE_32F_FAST_16BF, g.epilogue == Epilogue::None);
}

// A, B or C in bf16. Every operand enters the product as its bf16 value, accumulation is fp32, C is rounded once
// when bf16, the epilogue computes in fp32 on the unrounded sum. The first of these that cuBLASLt runs:
//   1. the configuration itself: fp32 operands rounded to bf16 into the staging, D in c_type, the epilogue in
//      cuBLASLt (with a bf16 D the bias rounded to bf16 into the staging too: cuBLASLt reads a bias of D's type);
//   2. with an epilogue or a bf16 C: the same bf16 operands, D fp32 (a staging temporary when C is bf16; C
//      itself when fp32), no epilogue, then finish(): the epilogue and the rounding in one element-wise pass;
//   3. no bf16 algorithm for the layout (odd leading dimensions): SGEMM (COMPUTE_32F) on fp32 copies holding the
//      operands' bf16 values (the same products, see bf16_values_kernel), into C or the temporary, then finish().
// Staging: 1 and 2 stage only the fp32 operands (2 bytes an element), 2 adds the C temporary (4 bytes an element)
// when C is bf16; 3 copies both operands (4 bytes an element) plus that temporary. Model shapes take 1 (or 2).
bool gemm_bf16_storage(const Launch& l, Context& ctx, const char* op, const GemmArgs& g) {
  const bool c16 = g.c_type == CUDA_R_16BF;
  // A bf16 bias only where every dimension and leading dimension is a multiple of 8 (the model's shapes): at odd
  // ones (N 37, C 53, OC 29) an H200 run saw cuBLASLt's BIAS epilogue with a bf16 D land 2 ulps off in 3% of the
  // outputs, as if the sum were rounded before the bias; those take step 2, which is exact.
  const bool tensor_core_shape = g.m % 8 == 0 && g.n % 8 == 0 && g.k % 8 == 0 && g.lda % 8 == 0 &&
                                 g.ldb % 8 == 0 && g.ldc % 8 == 0;
  ERL_CHECK(g.epilogue != Epilogue::DGelu || (g.aux != nullptr && g.beta == 0.0f && g.bias == nullptr),
            "cuda::" << op << ": the DGelu epilogue reads aux, overwrites C and adds no bias");
  ERL_CHECK(g.epilogue != Epilogue::BiasGradB || (g.bias != nullptr && !c16 && g.alpha == 1.0f),
            "cuda::" << op << ": the BiasGradB epilogue writes an fp32 bias gradient beside an fp32 C, alpha 1");
  if (lt_epilogue_ok(g) && (g.bias == nullptr || !c16 || tensor_core_shape)) {
    const bool bias16 = c16 && g.bias != nullptr;
    const Staged s = stage(l, ctx, op, g, CUDA_R_16BF, false, bias16);
    GemmArgs t = on_operands(g, s, CUDA_R_16BF);
    if (bias16) {
      t.bias = s.bias16;
      t.bias_type = CUDA_R_16BF;
    }
    if (run(l, ctx, op, t, CUBLAS_COMPUTE_32F, false)) return true;
  }
  if (g.epilogue == Epilogue::DGelu || g.epilogue == Epilogue::BiasGradB) return false;  // cuBLASLt's or none
  const bool apart = needs_finish(op, g);
  if (apart) {
    const Staged s = stage(l, ctx, op, g, CUDA_R_16BF, c16);
    if (run(l, ctx, op, fp32_c_only(on_operands(g, s, CUDA_R_16BF), s.C), CUBLAS_COMPUTE_32F, false)) {
      finish(l, g, c16 ? s.C : static_cast<const float*>(g.C));
      return true;
    }
  }
  const Staged s = stage(l, ctx, op, g, CUDA_R_32F, c16);
  run(l, ctx, op, fp32_c_only(on_operands(g, s, CUDA_R_32F), s.C), CUBLAS_COMPUTE_32F, true);
  if (apart) finish(l, g, c16 ? s.C : static_cast<const float*>(g.C));
  return true;
}

// Descriptors of a configuration (the per-call bias and aux pointers are set at each call).
std::unique_ptr<Context::AlgoCache::Descriptors> make_descriptors(const GemmArgs& g, cublasComputeType_t compute) {
  auto d = std::make_unique<Context::AlgoCache::Descriptors>();
  ERL_LT_CHECK(cublasLtMatmulDescCreate(&d->op, compute, CUDA_R_32F));
  cublasOperation_t ta = g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, tb = g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  ERL_LT_CHECK(cublasLtMatmulDescSetAttribute(d->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)));
  ERL_LT_CHECK(cublasLtMatmulDescSetAttribute(d->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)));
  ERL_CHECK(g.epilogue != Epilogue::GeluExactAuxBias, "cuBLASLt has no exact-GeLU epilogue (gemm_bf16_storage only)");
  if (g.epilogue != Epilogue::None) {
    const cublasLtEpilogue_t epi = g.epilogue == Epilogue::Bias          ? CUBLASLT_EPILOGUE_BIAS
                                   : g.epilogue == Epilogue::GeluAuxBias ? CUBLASLT_EPILOGUE_GELU_AUX_BIAS
                                   : g.epilogue == Epilogue::DGelu       ? CUBLASLT_EPILOGUE_DGELU
                                                                         : CUBLASLT_EPILOGUE_BGRADB;
    ERL_LT_CHECK(cublasLtMatmulDescSetAttribute(d->op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof(epi)));
    if (g.c_type != CUDA_R_32F && has_bias(g.epilogue)) {
      // The bias type defaults to D's (cublasLt.h, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE); say it. The GELU aux type
      // defaults to D's too (CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_DATA_TYPE), which is what we want.
      int32_t bias_type = g.bias_type;
      ERL_LT_CHECK(cublasLtMatmulDescSetAttribute(d->op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type,
                                                  sizeof(bias_type)));
    }
    if (g.epilogue == Epilogue::GeluAuxBias || g.epilogue == Epilogue::DGelu) {
      int64_t ld = g.ldaux;
      ERL_LT_CHECK(cublasLtMatmulDescSetAttribute(d->op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &ld, sizeof(ld)));
    }
  }
  make_layout(&d->a, g.a_type, g.trans_a ? g.k : g.m, g.trans_a ? g.m : g.k, g.lda, g.batch, g.stride_a);
  make_layout(&d->b, g.b_type, g.trans_b ? g.n : g.k, g.trans_b ? g.k : g.n, g.ldb, g.batch, g.stride_b);
  make_layout(&d->c, g.c_type, g.m, g.n, g.ldc, g.batch, g.stride_c);
  return d;
}

// The epilogue's per-call pointers (bias; aux for GELU_AUX_BIAS and DGELU) on a cached descriptor.
void set_epilogue_pointers(cublasLtMatmulDesc_t op, const GemmArgs& g) {
  if (g.epilogue == Epilogue::None) return;
  if (uses_bias_pointer(g.epilogue))
    ERL_LT_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &g.bias, sizeof(g.bias)));
  if (g.epilogue == Epilogue::GeluAuxBias || g.epilogue == Epilogue::DGelu)
    ERL_LT_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &g.aux, sizeof(g.aux)));
}

// The fastest of cuBLASLt's candidates for g, timed on g's own operands and C with D at `out`: one warm-up and 3
// timed calls each. `out` is C itself for beta = 0 (every call overwrites it, and aux, and the real call follows),
// a scratch block for beta != 0 (C is only read). A candidate that needs more workspace or does not launch is
// skipped; the heuristic's first is the default.
cublasLtMatmulAlgo_t fastest_candidate(const Launch& l, Context& ctx, const Context::AlgoCache::Descriptors& d,
                                       const GemmArgs& g, void* out, const cublasLtMatmulHeuristicResult_t* results,
                                       int found) {
  cudaStream_t stream = stream_of(l);
  cudaEvent_t start = nullptr, stop = nullptr;
  ERL_CUDA_CHECK(cudaEventCreate(&start));
  ERL_CUDA_CHECK(cudaEventCreate(&stop));
  cublasLtMatmulAlgo_t best = results[0].algo;
  float best_ms = INFINITY;
  auto call = [&](const cublasLtMatmulAlgo_t& algo) {
    return cublasLtMatmul(static_cast<cublasLtHandle_t>(ctx.cublaslt()), d.op, &g.alpha, g.A, d.a, g.B, d.b, &g.beta,
                          g.C, d.c, out, d.c, &algo, ctx.gemm_workspace(), ctx.gemm_workspace_bytes(), stream);
  };
  for (int i = 0; i < found; ++i) {
    if (results[i].state != CUBLAS_STATUS_SUCCESS || results[i].workspaceSize > ctx.gemm_workspace_bytes()) continue;
    if (call(results[i].algo) != CUBLAS_STATUS_SUCCESS) continue;
    ERL_CUDA_CHECK(cudaEventRecord(start, stream));
    bool ok = true;
    for (int rep = 0; rep < 3 && ok; ++rep) ok = call(results[i].algo) == CUBLAS_STATUS_SUCCESS;
    ERL_CUDA_CHECK(cudaEventRecord(stop, stream));
    ERL_CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0.0f;
    ERL_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    if (ok && ms < best_ms) {
      best_ms = ms;
      best = results[i].algo;
    }
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return best;
}

// Where candidate timing may write D: C itself for beta = 0; for beta != 0 the scratch, when D's span fits there and
// no operand lives in it; nullptr otherwise (no timing).
void* timing_output(Context& ctx, const GemmArgs& g) {
  if (g.beta == 0.0f) return g.C;
  const int64_t bytes = (g.c_type == CUDA_R_16BF ? 2 : 4) * operand_span(g.m, g.n, g.ldc, g.batch, g.stride_c);
  if (bytes > static_cast<int64_t>(ctx.options().scratch_bytes)) return nullptr;
  for (const void* p : {g.A, g.B, static_cast<const void*>(g.C), g.bias, static_cast<const void*>(g.aux)})
    if (p != nullptr && ctx.in_scratch(p)) return nullptr;
  return ctx.scratch(static_cast<size_t>(bytes), "gemm candidate timing");
}

// The epilogue as bench --profile names it (after the shape; empty for none).
const char* epilogue_label(Epilogue e) {
  switch (e) {
    case Epilogue::None: return "";
    case Epilogue::Bias: return " BIAS";
    case Epilogue::GeluAuxBias: return " GELU_AUX_BIAS";
    case Epilogue::GeluExactAuxBias: return " GELU_AUX_BIAS(exact, apart)";
    case Epilogue::DGelu: return " DGELU";
    case Epilogue::BiasGradB: return " BGRADB";
  }
  return " ?";
}

// A GEMM as bench --profile lists it: op, cuBLAS's transposes, m x n x k (x batch), A,B->C types, epilogue, beta.
std::string profile_label(const char* op, const GemmArgs& g) {
  auto type = [](cudaDataType_t t) { return t == CUDA_R_16BF ? "bf16" : "f32"; };
  char label[200];
  std::snprintf(label, sizeof label, "%s %c%c %dx%dx%d%s%s %s,%s->%s%s%s", op, g.trans_a ? 'T' : 'N',
                g.trans_b ? 'T' : 'N', g.m, g.n, g.k, g.batch > 1 ? " x" : "",
                g.batch > 1 ? std::to_string(g.batch).c_str() : "", type(g.a_type), type(g.b_type), type(g.c_type),
                epilogue_label(g.epilogue), g.beta != 0.0f ? " +C" : "");
  return label;
}

// One cuBLASLt call with descriptors and algorithm cached per configuration. No algorithm: throws when
// `required`, else returns false having done nothing.
bool run(const Launch& l, Context& ctx, const char* op, const GemmArgs& g, cublasComputeType_t compute,
         bool required) {
  const uint32_t al_a = alignment(g.A), al_b = alignment(g.B), al_c = alignment(g.C),
                 al_bias = g.bias ? alignment(g.bias) : 256, al_aux = g.aux ? alignment(g.aux) : 256;
  char key[256];
  std::snprintf(key, sizeof key, "%d%d %d %d %d %d %d %d %lld %lld %lld %d %d %u %u %u %u %u %d %d %d %d %d %d c%d b%d",
                g.trans_a, g.trans_b, g.m, g.n, g.k, g.lda, g.ldb, g.ldc, static_cast<long long>(g.stride_a),
                static_cast<long long>(g.stride_b), static_cast<long long>(g.stride_c), g.batch,
                static_cast<int>(g.epilogue), al_a, al_b, al_c, al_bias, al_aux, static_cast<int>(ctx.math()),
                g.beta != 0.0f, g.ldaux, static_cast<int>(g.a_type), static_cast<int>(g.b_type),
                static_cast<int>(g.c_type), static_cast<int>(compute), static_cast<int>(g.bias_type));
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
    // Split-K reductions. Deterministic mode: only through the workspace (fixed order), no in-place accumulation
    // across CTAs. A bf16 C: never a scheme that keeps partial sums in the output type (INPLACE adds them up in D,
    // OUTPUT_TYPE stores them in D's type), which would round the sum more than once; COMPUTE_TYPE keeps them fp32.
    uint32_t mask = CUBLASLT_REDUCTION_SCHEME_MASK;
    if (ctx.deterministic())
      mask = CUBLASLT_REDUCTION_SCHEME_NONE | CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE |
             CUBLASLT_REDUCTION_SCHEME_OUTPUT_TYPE;
    if (g.c_type != CUDA_R_32F)
      mask &= ~static_cast<uint32_t>(CUBLASLT_REDUCTION_SCHEME_INPLACE | CUBLASLT_REDUCTION_SCHEME_OUTPUT_TYPE);
    if (mask != static_cast<uint32_t>(CUBLASLT_REDUCTION_SCHEME_MASK))
      ERL_LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK, &mask,
                                                        sizeof(mask)));
    set_epilogue_pointers(e.desc->op, g);  // the heuristic may look at the epilogue's pointers
    // One candidate (the heuristic's first) in deterministic mode; otherwise up to kCandidates, timed at the
    // configuration's second call (the first runs the heuristic's first).
    constexpr int kCandidates = 6;
    const bool autotune = ctx.options().gemm_autotune && !ctx.deterministic();
    cublasLtMatmulHeuristicResult_t results[kCandidates] = {};
    int found = 0;
    cublasStatus_t s = cublasLtMatmulAlgoGetHeuristic(static_cast<cublasLtHandle_t>(ctx.cublaslt()), e.desc->op,
                                                      e.desc->a, e.desc->b, e.desc->c, e.desc->c, pref,
                                                      autotune ? kCandidates : 1, results, &found);
    e.ok = s == CUBLAS_STATUS_SUCCESS && found > 0;
    if (e.ok) e.algo = results[0].algo;
    if (e.ok && found > 1) e.candidates.assign(results, results + found);
    ERL_CHECK(e.ok || !required,
              "cuda::" << op << ": cuBLASLt has no algorithm for GEMM " << key << " (status " << static_cast<int>(s)
                       << ")");
    it = cache.emplace(key, std::move(e)).first;
  }
  Context::AlgoCache::Entry& e = it->second;
  if (!e.ok) return false;
  set_epilogue_pointers(e.desc->op, g);
  if (e.calls < 2 && ++e.calls == 2 && !e.candidates.empty()) {
    if (void* out = timing_output(ctx, g))
      e.algo = fastest_candidate(l, ctx, *e.desc, g, out, e.candidates.data(), static_cast<int>(e.candidates.size()));
    e.candidates.clear();
  }
  OpProfiler* profiler = ctx.profiler();
  if (profiler) profiler->begin_gemm();
  const cublasStatus_t s = cublasLtMatmul(static_cast<cublasLtHandle_t>(ctx.cublaslt()), e.desc->op, &g.alpha, g.A,
                                          e.desc->a, g.B, e.desc->b, &g.beta, g.C, e.desc->c, g.C, e.desc->c, &e.algo,
                                          ctx.gemm_workspace(), ctx.gemm_workspace_bytes(), stream_of(l));
  if (profiler) profiler->end_gemm(profile_label(op, g), 2.0 * g.m * g.n * double(g.k) * g.batch);
  // A configuration the heuristic offered but the call refuses before launching anything (an unsupported
  // combination of types and epilogue) counts as one without an algorithm, from now on.
  if (!required && (s == CUBLAS_STATUS_NOT_SUPPORTED || s == CUBLAS_STATUS_INVALID_VALUE)) {
    e.ok = false;
    return false;
  }
  ERL_CHECK(s == CUBLAS_STATUS_SUCCESS, "cuda::" << op << ": cuBLASLt error " << static_cast<int>(s)
                                                 << " in cublasLtMatmul for GEMM " << key);
  return true;
}

}  // namespace

bool gemm(const Launch& l, const char* op, const GemmArgs& g) {
  Context& ctx = need_context(l, op);
  if (g.m == 0 || g.n == 0) return true;
  ERL_CHECK(g.c_type == CUDA_R_32F || ctx.math() == MathMode::BF16,
            "cuda::" << op << ": a bf16 GEMM output needs MathMode::BF16");
  if (g.a_type != CUDA_R_32F || g.b_type != CUDA_R_32F || g.c_type != CUDA_R_32F)
    return gemm_bf16_storage(l, ctx, op, g);
  // BiasGradB sums B as the GEMM reads it: not when that is fp32 B rounded into the staging
  if (g.epilogue == Epilogue::BiasGradB && ctx.math() == MathMode::BF16) return false;
  if (ctx.math() == MathMode::BF16) return gemm_staged_bf16(l, ctx, op, g);
  return run(l, ctx, op, g, CUBLAS_COMPUTE_32F, g.epilogue == Epilogue::None);
}

}  // namespace erlangshen::cuda
