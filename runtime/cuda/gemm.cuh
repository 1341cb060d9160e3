// One cuBLASLt GEMM entry point for the backend (matmul and attention), column-major like cuBLAS:
//   C[b] (m, n) = alpha * op(A[b]) (m, k) @ op(B[b]) (k, n) + beta * C[b]  (+ epilogue),  b < batch
// Row-major callers swap operands (row-major X is column-major X^T). A, B and C are each fp32 or bf16.
//   fp32 A, B and C (the backend's fp32 storage): under MathMode::FP32 SGEMM (COMPUTE_32F); under MathMode::BF16
//     A and B are first rounded to bf16 into the Context's staging (context.h).
//   any of them bf16 (bf16 activation storage, runtime/act.h; attention's staged Q/K/V and probabilities; the GEMM
//     probe): every operand enters the product as a bf16 value (an fp32 one rounded into the staging, a bf16 one
//     read in place), fp32 accumulation on the bf16 tensor cores (COMPUTE_32F), C/D in c_type: a bf16 C is
//     rounded once and needs MathMode::BF16 (split-K only with fp32 partial sums: reduction scheme NONE or
//     COMPUTE_TYPE). Configurations cuBLASLt has no algorithm for take a fallback with the same arithmetic (gemm.cu;
//     a bf16 C must then be overwritten, beta = 0).
// Algorithms come from the cuBLASLt heuristic once per (shape, alignment, types, mode, epilogue) and are cached in
// the Context, so a shape always runs the same algorithm.
#pragma once
#include <cublasLt.h>

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "runtime/cuda/common.cuh"

namespace erlangshen::cuda {

// Per configuration (shape, layouts, alignment, types, epilogue, compute): the cuBLASLt descriptors and the chosen
// algorithm, made once, so a repeated GEMM costs one key lookup and the matmul call on the host.
struct Context::AlgoCache {
  struct Descriptors {
    cublasLtMatmulDesc_t op = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
    Descriptors() = default;
    Descriptors(const Descriptors&) = delete;
    Descriptors& operator=(const Descriptors&) = delete;
    ~Descriptors() {
      if (c) cublasLtMatrixLayoutDestroy(c);
      if (b) cublasLtMatrixLayoutDestroy(b);
      if (a) cublasLtMatrixLayoutDestroy(a);
      if (op) cublasLtMatmulDescDestroy(op);
    }
  };
  struct Entry {
    bool ok = false;  // false: no algorithm supports this configuration (caller falls back)
    cublasLtMatmulAlgo_t algo;
    // Autotuning (gemm.cu): the heuristic's candidates, timed at the configuration's second call and then cleared,
    // so that a shape seen once (the MLM head's masked-row count changes every step) costs no timing.
    std::vector<cublasLtMatmulHeuristicResult_t> candidates;
    int calls = 0;
    std::unique_ptr<Descriptors> desc;
  };
  std::unordered_map<std::string, Entry> entries;
};

// The caller's bias is fp32 whatever C's type. With a bf16 C the bias enters as its bf16 value (cuBLASLt's epilogue
// reads a bias of D's type: H100 and H200 refuse an fp32 bias with a bf16 D), the epilogue runs in fp32 on the
// unrounded sum and rounds its outputs once.
enum class Epilogue {
  None,
  Bias,          // C += bias[row]                 (bias length m)
  GeluAuxBias,   // aux = AB + bias; C = gelu_tanh(AB + bias)   (beta must be 0; aux in c_type, ldaux % 8 == 0)
  GeluExactAuxBias,  // aux = AB + bias; C = gelu_exact(AB + bias): cuBLASLt has no such epilogue, so only GEMMs
                     // on bf16 storage take it, as their separate element-wise pass (gemm.cu gemm_bf16_storage)
  DGelu,         // C = AB * gelu_tanh'(aux)   (aux read: the GeLU input in c_type, ldaux % 8 == 0; no bias; beta 0).
                 // cuBLASLt's DGELU or nothing: gemm() returns false when cuBLASLt has no algorithm for it
  BiasGradB,     // C = alpha AB + beta C, and bias (n, fp32, written, not accumulated) = sum over k of op(B)[k, :]
                 // (a weight-gradient GEMM's bias gradient: B is dout). fp32 C, alpha 1. cuBLASLt's BGRADB or
                 // nothing, as DGelu
};

struct GemmArgs {
  bool trans_a = false, trans_b = false;
  int m = 0, n = 0, k = 0;
  float alpha = 1.0f, beta = 0.0f;
  cudaDataType_t a_type = CUDA_R_32F;  // element type of A: CUDA_R_32F or CUDA_R_16BF
  cudaDataType_t b_type = CUDA_R_32F;  // element type of B
  cudaDataType_t c_type = CUDA_R_32F;  // element type of C (= D, and of aux)
  const void* A = nullptr;
  int lda = 0;
  int64_t stride_a = 0;
  const void* B = nullptr;
  int ldb = 0;
  int64_t stride_b = 0;
  void* C = nullptr;
  int ldc = 0;
  int64_t stride_c = 0;
  int batch = 1;
  Epilogue epilogue = Epilogue::None;
  const void* bias = nullptr;          // fp32 from callers; gemm.cu hands cuBLASLt a bf16 copy for a bf16 C
  cudaDataType_t bias_type = CUDA_R_32F;
  void* aux = nullptr;  // written by GeluAuxBias, read by DGelu
  int ldaux = 0;
};

// Bytes rounded up to a 256-byte boundary: offsets of operands carved from one staging block keep the alignment
// cuBLASLt's fastest algorithms want.
inline int64_t round_up_256(int64_t bytes) { return (bytes + 255) / 256 * 256; }

// Runs the GEMM. Returns false (and does nothing) only for fp32 A, B and C with an epilogue no algorithm supports,
// or a DGelu / BiasGradB epilogue cuBLASLt cannot run (the caller then runs it apart); throws on any other
// failure. With a bf16 A, B or C it always runs the other epilogues: when cuBLASLt cannot, an element-wise pass
// after the GEMM does (C packed: ldc == m, and batch 1 or stride_c == m n; aux packed, batch 1).
// Scratch: outside deterministic mode a beta != 0 GEMM may borrow the Context's scratch once (its second call, to
// time candidate algorithms), so a caller keeps nothing in the scratch across such a GEMM that is not one of its
// operands (operands there are detected, and then no timing happens).
// Staging: the Context's staging is one block, re-carved by every GEMM that stages an operand or falls back, so
// an operand the caller staged itself (matmul.cu's shared dout) must be bf16 and its GEMM must have a cuBLASLt
// algorithm (dimensions multiples of 8, 16-byte aligned tensors); gemm() throws rather than overwrite it.
bool gemm(const Launch& l, const char* op, const GemmArgs& g);

}  // namespace erlangshen::cuda
