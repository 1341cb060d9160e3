// The cuBLASLt calls of runtime/cuda/gemm.cu on the host (see cuda_emulation.h), per the documented contract:
//   D[b] = alpha * op(A[b]) op(B[b]) + beta * C[b], column-major, then the epilogue:
//     BIAS:           D += bias[row]
//     GELU_AUX_BIAS:  aux = x + bias[row];  D = gelu_tanh(x + bias[row])      (x the scaled product)
//     DGELU:          D = x * gelu_tanh'(aux)                                   (aux read in its type; no bias)
//     BGRADB:         D as without epilogue; bias[j] = sum over k of op(B)[k, j]  (written in D's type)
//   The bias is read in CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, which defaults to D's type (so a bf16 D without that
//   attribute reads a bf16 bias, as the library does); aux is stored in D's type.
//   COMPUTE_32F multiplies the operands' values (bf16 products are exact in fp32) with fp32 accumulation
//   (OpenBLAS SGEMM on the widened operands: the GPU's summation order differs, within the tests' tolerances);
//   COMPUTE_32F_FAST_16BF rounds fp32 operands to bf16 first. A bf16 D is rounded once, to nearest even.
// The heuristic refuses what the H100 runs showed cuBLASLt refusing, so that gemm.cu's fallbacks run here too:
// A and B of different types, bf16 operands with a leading dimension that is not a multiple of 8 or less than
// 16-byte alignment, a GELU aux leading dimension that is not a multiple of 8, an fp32 bias with a bf16 D. ERL_EMU_CUBLASLT_REFUSE (a comma
// list) refuses more, to test the other fallbacks: `bf16-epilogue` (any epilogue with a bf16 D), `epilogue` (any
// epilogue), `bf16` (any bf16 A, B or D).
// Layouts that do not match the operation's m, n, k, or batch counts that differ, are INVALID_VALUE: a wrong
// descriptor in gemm.cu shows up as an error here, not as wrong numbers.
#include <cblas.h>
#include <cublasLt.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "runtime/bf16.h"
#include "tests/cuda_emulation/cuda_emulation.h"

namespace {

struct Desc {
  cublasComputeType_t compute = CUBLAS_COMPUTE_32F;
  cudaDataType_t scale = CUDA_R_32F;
  int32_t trans_a = CUBLAS_OP_N, trans_b = CUBLAS_OP_N;
  uint32_t epilogue = CUBLASLT_EPILOGUE_DEFAULT;
  const void* bias = nullptr;
  int32_t bias_type = -1;  // -1: D's type
  void* aux = nullptr;
  int64_t aux_ld = 0;
  int32_t aux_type = -1;
};

struct Layout {
  cudaDataType_t type = CUDA_R_32F;
  uint64_t rows = 0, cols = 0;
  int64_t ld = 0;
  int32_t batch = 1;
  int64_t stride = 0;
};

bool refused(const char* what) {
  const char* env = std::getenv("ERL_EMU_CUBLASLT_REFUSE");
  if (env == nullptr) return false;
  const std::string list = std::string(",") + env + ",";
  return list.find(std::string(",") + what + ",") != std::string::npos;
}

size_t type_bytes(cudaDataType_t t) { return t == CUDA_R_16BF ? 2 : 4; }
bool supported_type(int t) { return t == CUDA_R_32F || t == CUDA_R_16BF; }

float load(const void* p, cudaDataType_t t, int64_t i) {
  if (t == CUDA_R_16BF) return erlangshen::to_float(static_cast<const erlangshen::bf16*>(p)[i]);
  return static_cast<const float*>(p)[i];
}

void store(void* p, cudaDataType_t t, int64_t i, float v) {
  if (t == CUDA_R_16BF) {
    static_cast<erlangshen::bf16*>(p)[i] = erlangshen::to_bf16(v);
    return;
  }
  static_cast<float*>(p)[i] = v;
}

float gelu_tanh(float x) {
  const float k = 0.7978845608028654f;  // sqrt(2 / pi)
  return 0.5f * x * (1.0f + std::tanh(k * (x + 0.044715f * x * x * x)));
}

// d/dx gelu_tanh, evaluated in double: 0.5 (1 + t) + 0.5 x (1 - t^2) k (1 + 3 a x^2), t = tanh(k (x + a x^3))
float gelu_tanh_derivative(float xf) {
  const double x = xf, k = 0.7978845608028654, a = 0.044715;
  const double t = std::tanh(k * (x + a * x * x * x));
  return static_cast<float>(0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * k * (1.0 + 3.0 * a * x * x));
}

uint32_t address_alignment(const void* p) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  uint32_t al = 256;
  while (al > 1 && a % al != 0) al >>= 1;
  return al;
}

// Checks the layouts against each other; the operation's sizes.
cublasStatus_t shape_of(const Desc& d, const Layout& a, const Layout& b, const Layout& c, const Layout& dl, uint64_t* m,
                        uint64_t* n, uint64_t* k) {
  *m = c.rows, *n = c.cols;
  const uint64_t am = d.trans_a == CUBLAS_OP_N ? a.rows : a.cols, ak = d.trans_a == CUBLAS_OP_N ? a.cols : a.rows;
  const uint64_t bk = d.trans_b == CUBLAS_OP_N ? b.rows : b.cols, bn = d.trans_b == CUBLAS_OP_N ? b.cols : b.rows;
  *k = ak;
  if (am != *m || bn != *n || bk != ak || dl.rows != c.rows || dl.cols != c.cols || dl.type != c.type ||
      a.batch != c.batch || b.batch != c.batch || dl.batch != c.batch)
    return CUBLAS_STATUS_INVALID_VALUE;
  if (a.ld < static_cast<int64_t>(a.rows) || b.ld < static_cast<int64_t>(b.rows) || c.ld < static_cast<int64_t>(c.rows))
    return CUBLAS_STATUS_INVALID_VALUE;
  return CUBLAS_STATUS_SUCCESS;
}

bool algorithm_exists(const Desc& d, const Layout& a, const Layout& b, const Layout& c) {
  if (!supported_type(a.type) || !supported_type(b.type) || !supported_type(c.type)) return false;
  if (a.type != b.type) return false;
  const bool bf16 = a.type == CUDA_R_16BF || c.type == CUDA_R_16BF;
  if (bf16 && refused("bf16")) return false;
  if (a.type == CUDA_R_16BF && (a.ld % 8 != 0 || b.ld % 8 != 0)) return false;
  if (c.type == CUDA_R_16BF && c.ld % 8 != 0) return false;
  if (d.compute == CUBLAS_COMPUTE_32F_FAST_16BF && a.type != CUDA_R_32F) return false;
  if (d.compute != CUBLAS_COMPUTE_32F && d.compute != CUBLAS_COMPUTE_32F_FAST_16BF) return false;
  if (d.epilogue != CUBLASLT_EPILOGUE_DEFAULT) {
    if (refused("epilogue") || (c.type == CUDA_R_16BF && refused("bf16-epilogue"))) return false;
    if (d.epilogue != CUBLASLT_EPILOGUE_BIAS && d.epilogue != CUBLASLT_EPILOGUE_GELU_AUX_BIAS &&
        d.epilogue != CUBLASLT_EPILOGUE_DGELU && d.epilogue != CUBLASLT_EPILOGUE_BGRADB)
      return false;
    if ((d.epilogue == CUBLASLT_EPILOGUE_GELU_AUX_BIAS || d.epilogue == CUBLASLT_EPILOGUE_DGELU) && d.aux_ld % 8 != 0)
      return false;
    if (c.type == CUDA_R_16BF && d.bias_type == CUDA_R_32F) return false;  // H100 / H200: status 7
  }
  return true;
}

template <class T>
cublasStatus_t set_value(T* field, const void* buf, size_t size) {
  if (size != sizeof(T)) return CUBLAS_STATUS_INVALID_VALUE;
  std::memcpy(field, buf, sizeof(T));
  return CUBLAS_STATUS_SUCCESS;
}

}  // namespace

extern "C" {

cublasStatus_t cublasLtCreate(cublasLtHandle_t* handle) {
  *handle = reinterpret_cast<cublasLtHandle_t>(new char(0));
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtDestroy(cublasLtHandle_t handle) {
  delete reinterpret_cast<char*>(handle);
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t* desc, cublasComputeType_t compute, cudaDataType_t scale) {
  auto* d = new Desc();
  d->compute = compute;
  d->scale = scale;
  *desc = reinterpret_cast<cublasLtMatmulDesc_t>(d);
  return scale == CUDA_R_32F ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_NOT_SUPPORTED;
}
cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t desc) {
  delete reinterpret_cast<Desc*>(desc);
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t desc, cublasLtMatmulDescAttributes_t attr,
                                              const void* buf, size_t size) {
  Desc* d = reinterpret_cast<Desc*>(desc);
  switch (attr) {
    case CUBLASLT_MATMUL_DESC_TRANSA:
      return set_value(&d->trans_a, buf, size);
    case CUBLASLT_MATMUL_DESC_TRANSB:
      return set_value(&d->trans_b, buf, size);
    case CUBLASLT_MATMUL_DESC_EPILOGUE:
      return set_value(&d->epilogue, buf, size);
    case CUBLASLT_MATMUL_DESC_BIAS_POINTER:
      return set_value(&d->bias, buf, size);
    case CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE:
      return set_value(&d->bias_type, buf, size);
    case CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER:
      return set_value(&d->aux, buf, size);
    case CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD:
      return set_value(&d->aux_ld, buf, size);
    case CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_DATA_TYPE:
      return set_value(&d->aux_type, buf, size);
    default:
      return CUBLAS_STATUS_NOT_SUPPORTED;  // an attribute gemm.cu does not use: emulate it first
  }
}

cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t* layout, cudaDataType type, uint64_t rows,
                                          uint64_t cols, int64_t ld) {
  auto* l = new Layout();
  l->type = type, l->rows = rows, l->cols = cols, l->ld = ld;
  *layout = reinterpret_cast<cublasLtMatrixLayout_t>(l);
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t layout) {
  delete reinterpret_cast<Layout*>(layout);
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatrixLayoutSetAttribute(cublasLtMatrixLayout_t layout, cublasLtMatrixLayoutAttribute_t attr,
                                                const void* buf, size_t size) {
  Layout* l = reinterpret_cast<Layout*>(layout);
  switch (attr) {
    case CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT:
      return set_value(&l->batch, buf, size);
    case CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET:
      return set_value(&l->stride, buf, size);
    default:
      return CUBLAS_STATUS_NOT_SUPPORTED;
  }
}

cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t* pref) {
  *pref = reinterpret_cast<cublasLtMatmulPreference_t>(new cublasLtMatmulPreferenceOpaque_t());
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t pref) {
  delete reinterpret_cast<cublasLtMatmulPreferenceOpaque_t*>(pref);
  return CUBLAS_STATUS_SUCCESS;
}
// Workspace size, alignments and reduction schemes only steer the choice of algorithm: accepted, not needed here.
cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t, cublasLtMatmulPreferenceAttributes_t,
                                                    const void*, size_t) {
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t, cublasLtMatmulDesc_t desc, cublasLtMatrixLayout_t a,
                                              cublasLtMatrixLayout_t b, cublasLtMatrixLayout_t c,
                                              cublasLtMatrixLayout_t dl, cublasLtMatmulPreference_t, int requested,
                                              cublasLtMatmulHeuristicResult_t results[], int* returned) {
  const Desc& d = *reinterpret_cast<const Desc*>(desc);
  const Layout &la = *reinterpret_cast<const Layout*>(a), &lb = *reinterpret_cast<const Layout*>(b),
               &lc = *reinterpret_cast<const Layout*>(c), &ld = *reinterpret_cast<const Layout*>(dl);
  *returned = 0;
  uint64_t m, n, k;
  const cublasStatus_t s = shape_of(d, la, lb, lc, ld, &m, &n, &k);
  if (s != CUBLAS_STATUS_SUCCESS) return s;
  if (requested < 1 || !algorithm_exists(d, la, lb, lc)) return CUBLAS_STATUS_NOT_SUPPORTED;
  // Two candidates (the same algorithm) when more than one is asked for, so that gemm.cu's timing of candidates
  // runs here too.
  *returned = requested > 1 ? 2 : 1;
  for (int i = 0; i < *returned; ++i) {
    std::memset(&results[i], 0, sizeof(results[i]));
    results[i].state = CUBLAS_STATUS_SUCCESS;
    results[i].wavesCount = 1.0f;
  }
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmul(cublasLtHandle_t, cublasLtMatmulDesc_t desc, const void* alpha_p, const void* A,
                              cublasLtMatrixLayout_t a, const void* B, cublasLtMatrixLayout_t b, const void* beta_p,
                              const void* C, cublasLtMatrixLayout_t c, void* D, cublasLtMatrixLayout_t dl,
                              const cublasLtMatmulAlgo_t*, void*, size_t, cudaStream_t stream) {
  erl_emu::finish_stream(stream);  // the work queued before the GEMM on its stream, then the GEMM at once
  const Desc& d = *reinterpret_cast<const Desc*>(desc);
  const Layout &la = *reinterpret_cast<const Layout*>(a), &lb = *reinterpret_cast<const Layout*>(b),
               &lc = *reinterpret_cast<const Layout*>(c), &ld = *reinterpret_cast<const Layout*>(dl);
  uint64_t m, n, k;
  const cublasStatus_t s = shape_of(d, la, lb, lc, ld, &m, &n, &k);
  if (s != CUBLAS_STATUS_SUCCESS) return s;
  if (!algorithm_exists(d, la, lb, lc)) return CUBLAS_STATUS_NOT_SUPPORTED;
  if (la.type == CUDA_R_16BF && (address_alignment(A) < 16 || address_alignment(B) < 16))
    return CUBLAS_STATUS_NOT_SUPPORTED;
  const bool gelu = d.epilogue == CUBLASLT_EPILOGUE_GELU_AUX_BIAS, dgelu = d.epilogue == CUBLASLT_EPILOGUE_DGELU;
  const bool bias = d.epilogue == CUBLASLT_EPILOGUE_BIAS || gelu, bgradb = d.epilogue == CUBLASLT_EPILOGUE_BGRADB;
  if ((bias || bgradb) && d.bias == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  if (bgradb && lc.batch != 1) return CUBLAS_STATUS_INVALID_VALUE;
  if ((gelu || dgelu) && (d.aux == nullptr || d.aux_ld < static_cast<int64_t>(m) || lc.batch != 1))
    return CUBLAS_STATUS_INVALID_VALUE;
  const float alpha = *static_cast<const float*>(alpha_p), beta = *static_cast<const float*>(beta_p);
  const cudaDataType_t bias_type = d.bias_type < 0 ? lc.type : static_cast<cudaDataType_t>(d.bias_type);
  const cudaDataType_t aux_type = d.aux_type < 0 ? lc.type : static_cast<cudaDataType_t>(d.aux_type);
  const bool round_operands = d.compute == CUBLAS_COMPUTE_32F_FAST_16BF;
  auto operand = [&](float v) { return round_operands ? erlangshen::round_to_bf16(v) : v; };
  // op(A) as m x k and op(B) as n x k, row-major, widened once.
  std::vector<float> opa(m * k), opb(n * k), out(m * n);
  for (int32_t bi = 0; bi < lc.batch; ++bi) {
    const int64_t oa = bi * la.stride, ob = bi * lb.stride, oc = bi * lc.stride, od = bi * ld.stride;
    for (uint64_t i = 0; i < m; ++i)
      for (uint64_t p = 0; p < k; ++p) {
        const int64_t idx = d.trans_a == CUBLAS_OP_N ? oa + static_cast<int64_t>(i + p * la.ld)
                                                     : oa + static_cast<int64_t>(p + i * la.ld);
        opa[i * k + p] = operand(load(A, la.type, idx));
      }
    for (uint64_t j = 0; j < n; ++j)
      for (uint64_t p = 0; p < k; ++p) {
        const int64_t idx = d.trans_b == CUBLAS_OP_N ? ob + static_cast<int64_t>(p + j * lb.ld)
                                                     : ob + static_cast<int64_t>(j + p * lb.ld);
        opb[j * k + p] = operand(load(B, lb.type, idx));
      }
    // out (n x m, row-major: column-major m x n) = alpha * opb (n x k) opa^T
    const int M = static_cast<int>(m), N = static_cast<int>(n), K = static_cast<int>(k);
    if (K > 0)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, M, K, alpha, opb.data(), K, opa.data(), K, 0.0f,
                  out.data(), M);
    else
      std::fill(out.begin(), out.end(), 0.0f);
    if (bgradb)  // the bias gradient (n): op(B)'s column sums over k, fp32 accumulation, last row first (an order
                 // of its own, as the library's is: not the backend's column sums, bit for bit)
      for (uint64_t j = 0; j < n; ++j) {
        float sum = 0.0f;
        for (uint64_t p = k; p-- > 0;) sum += opb[j * k + p];
        store(const_cast<void*>(d.bias), bias_type, static_cast<int64_t>(j), sum);
      }
    if (beta != 0.0f)
      for (uint64_t j = 0; j < n; ++j)
        for (uint64_t i = 0; i < m; ++i)
          out[j * m + i] += beta * load(C, lc.type, oc + static_cast<int64_t>(i + j * lc.ld));
    for (uint64_t j = 0; j < n; ++j)
      for (uint64_t i = 0; i < m; ++i) {
        float x = out[j * m + i];
        if (bias) x += load(d.bias, bias_type, static_cast<int64_t>(i));
        if (dgelu) x *= gelu_tanh_derivative(load(d.aux, aux_type, static_cast<int64_t>(i + j * d.aux_ld)));
        if (gelu) {
          store(d.aux, aux_type, static_cast<int64_t>(i + j * d.aux_ld), x);
          x = gelu_tanh(x);
        }
        store(D, ld.type, od + static_cast<int64_t>(i + j * ld.ld), x);
      }
  }
  return CUBLAS_STATUS_SUCCESS;
}

}  // extern "C"
