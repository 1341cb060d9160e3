// One cuBLASLt GEMM entry point for the backend (matmul and attention), column-major like cuBLAS:
//   C[b] (m, n) = alpha * op(A[b]) (m, k) @ op(B[b]) (k, n) + beta * C[b]  (+ epilogue),  b < batch
// Row-major callers swap operands (row-major X is column-major X^T). fp32 operands (the backend's storage) under
// MathMode::FP32 run as SGEMM (COMPUTE_32F); under MathMode::BF16 they are first rounded to bf16 into the
// Context's staging (context.h). bf16 operands (ab_type = CUDA_R_16BF: attention's staged Q/K/V and probabilities,
// the GEMM probe) compute in fp32 on the bf16 tensor cores (COMPUTE_32F), C/D in c_type. Algorithms come from the cuBLASLt heuristic once per
// (shape, alignment, mode, epilogue) and are cached in the Context, so a shape always runs the same algorithm.
#pragma once
#include <cublasLt.h>

#include <memory>
#include <string>
#include <unordered_map>

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
    std::unique_ptr<Descriptors> desc;
  };
  std::unordered_map<std::string, Entry> entries;
};

enum class Epilogue {
  None,
  Bias,          // C += bias[row]                 (bias length m)
  GeluAuxBias,   // aux = AB + bias; C = gelu_tanh(aux)   (beta must be 0)
};

struct GemmArgs {
  bool trans_a = false, trans_b = false;
  int m = 0, n = 0, k = 0;
  float alpha = 1.0f, beta = 0.0f;
  cudaDataType_t ab_type = CUDA_R_32F;  // element type of A and B
  cudaDataType_t c_type = CUDA_R_32F;   // element type of C (= D)
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
  const float* bias = nullptr;
  float* aux = nullptr;
  int ldaux = 0;
};

// Bytes rounded up to a 256-byte boundary: offsets of operands carved from one staging block keep the alignment
// cuBLASLt's fastest algorithms want.
inline int64_t round_up_256(int64_t bytes) { return (bytes + 255) / 256 * 256; }

// Runs the GEMM. Returns false (and does nothing) only when an epilogue was asked for and no algorithm supports
// it; throws on any other failure.
bool gemm(const Launch& l, const char* op, const GemmArgs& g);

}  // namespace erlangshen::cuda
