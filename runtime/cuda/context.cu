// Context: stream, cuBLASLt handle + workspace, reduction scratch, GEMM algorithm cache (see context.h).
#include "runtime/cuda/context.h"

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <sstream>
#include <string>
#include <unordered_map>

#include "runtime/cuda/common.cuh"
#include "runtime/cuda/gemm.cuh"

namespace erlangshen {

// Defined here (not in runtime/ops.cpp) when the build has the CUDA backend.
bool cuda_available() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no device" error
    return false;
  }
  return n > 0;
}

namespace cuda {

const char* math_mode_name(MathMode m) { return m == MathMode::FP32 ? "fp32" : "bf16"; }

struct Context::Impl {
  cudaStream_t stream = nullptr;
  cublasLtHandle_t lt = nullptr;
  void* workspace = nullptr;
  void* scratch = nullptr;
  void* staging = nullptr;
  size_t staging_bytes = 0;
  void* epilogue_vector = nullptr;
  AlgoCache algos;
};

Context::Context(const ContextOptions& options) : options_(options), impl_(std::make_unique<Impl>()) {
  ERL_CUDA_CHECK(cudaSetDevice(options_.device));
  if (options_.high_priority) {
    int least = 0, greatest = 0;
    ERL_CUDA_CHECK(cudaDeviceGetStreamPriorityRange(&least, &greatest));
    ERL_CUDA_CHECK(cudaStreamCreateWithPriority(&impl_->stream, cudaStreamNonBlocking, greatest));
  } else {
    ERL_CUDA_CHECK(cudaStreamCreateWithFlags(&impl_->stream, cudaStreamNonBlocking));
  }
  ERL_CHECK(cublasLtCreate(&impl_->lt) == CUBLAS_STATUS_SUCCESS, "cublasLtCreate failed");
  if (options_.gemm_workspace_bytes > 0) ERL_CUDA_CHECK(cudaMalloc(&impl_->workspace, options_.gemm_workspace_bytes));
  if (options_.scratch_bytes > 0) ERL_CUDA_CHECK(cudaMalloc(&impl_->scratch, options_.scratch_bytes));
  if (options_.epilogue_vector_bytes > 0)
    ERL_CUDA_CHECK(cudaMalloc(&impl_->epilogue_vector, options_.epilogue_vector_bytes));
}

Context::~Context() {
  if (!impl_) return;
  if (impl_->stream) cudaStreamSynchronize(impl_->stream);
  if (impl_->staging) cudaFree(impl_->staging);
  if (impl_->epilogue_vector) cudaFree(impl_->epilogue_vector);
  if (impl_->scratch) cudaFree(impl_->scratch);
  if (impl_->workspace) cudaFree(impl_->workspace);
  if (impl_->lt) cublasLtDestroy(impl_->lt);
  if (impl_->stream) cudaStreamDestroy(impl_->stream);
}

void* Context::stream() const { return impl_->stream; }
void Context::synchronize() const { ERL_CUDA_CHECK(cudaStreamSynchronize(impl_->stream)); }
void* Context::cublaslt() const { return impl_->lt; }
void* Context::gemm_workspace() const { return impl_->workspace; }
Context::AlgoCache& Context::algo_cache() const { return impl_->algos; }

void* Context::scratch(size_t bytes, const char* who) const {
  ERL_CHECK(bytes <= options_.scratch_bytes, "cuda::" << who << " needs " << bytes << " bytes of reduction scratch but "
                                                      "the Context has " << options_.scratch_bytes
                                                      << " (raise ContextOptions::scratch_bytes)");
  return impl_->scratch;
}

void* Context::staging(size_t bytes) const {
  if (bytes > impl_->staging_bytes) {
    ERL_CUDA_CHECK(cudaStreamSynchronize(impl_->stream));  // earlier ops may still read the old block
    if (impl_->staging) ERL_CUDA_CHECK(cudaFree(impl_->staging));
    impl_->staging = nullptr;
    impl_->staging_bytes = 0;
    const cudaError_t e = cudaMalloc(&impl_->staging, bytes);
    if (e != cudaSuccess) cudaGetLastError();
    ERL_CHECK(e == cudaSuccess, "cuda: cannot allocate " << bytes << " bytes of bf16 GEMM operand staging ("
                                                         << cudaGetErrorString(e)
                                                         << "): lower train.micro_batch or use train.recompute");
    impl_->staging_bytes = bytes;
  }
  return impl_->staging;
}

bool Context::in_staging(const void* p) const {
  const auto base = reinterpret_cast<uintptr_t>(impl_->staging), q = reinterpret_cast<uintptr_t>(p);
  return impl_->staging != nullptr && q >= base && q < base + impl_->staging_bytes;
}

float* Context::epilogue_vector(size_t n) const {
  return n * sizeof(float) <= options_.epilogue_vector_bytes ? static_cast<float*>(impl_->epilogue_vector) : nullptr;
}

bool Context::in_scratch(const void* p) const {
  const auto base = reinterpret_cast<uintptr_t>(impl_->scratch), q = reinterpret_cast<uintptr_t>(p);
  return impl_->scratch != nullptr && q >= base && q < base + options_.scratch_bytes;
}

std::string device_description(int device) {
  cudaDeviceProp p{};
  ERL_CUDA_CHECK(cudaGetDeviceProperties(&p, device));
  std::ostringstream os;
  os << p.name << " (sm_" << p.major << p.minor << ", " << p.multiProcessorCount << " SMs, "
     << (p.totalGlobalMem >> 20) << " MiB)";
  return os.str();
}

}  // namespace cuda
}  // namespace erlangshen
