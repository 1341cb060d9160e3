// GPU time per op of the ops that run through runtime/ops.h (and runtime/ops_bf16.cpp) on one Context: a CUDA event
// before and after each op on the Context's stream, summed per op name when read. For `erlangshen bench --profile`
// (one extra step after the timed ones, so the timed steps carry no events). Nested ops count once, in the
// outermost. A second table times every cuBLASLt GEMM on its own (runtime/cuda/gemm.cu), per GEMM shape, with its
// FLOPs: which GEMMs fall short of the tensor cores' rate. Plain C++ header: host code uses it without CUDA headers.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace erlangshen::cuda {

class OpProfiler {
 public:
  explicit OpProfiler(void* stream);  // cudaStream_t
  ~OpProfiler();
  OpProfiler(const OpProfiler&) = delete;
  OpProfiler& operator=(const OpProfiler&) = delete;

  void begin(const char* op);
  void end();

  struct Row {
    std::string name;  // the op's name, or the GEMM's shape
    int64_t calls = 0;
    double ms = 0.0, flops = 0.0;  // summed over the calls (flops: GEMMs only)
  };
  // One GEMM (inside an op): its own events, listed under `shape` with `flops` per call.
  void begin_gemm();
  void end_gemm(const std::string& shape, double flops);

  struct Profile {
    std::vector<Row> ops;    // largest first
    std::vector<Row> gemms;  // largest first
  };
  // Waits for the stream, then the time per op name and per GEMM shape; clears what was recorded.
  Profile collect();

 private:
  struct Impl;
  Impl* impl_;
};

// Records the op it lives around when the Context (void*: cuda::Context*, may be null) has a profiler attached.
class OpScope {
 public:
  OpScope(void* context, const char* op);
  ~OpScope();
  OpScope(const OpScope&) = delete;
  OpScope& operator=(const OpScope&) = delete;

 private:
  OpProfiler* profiler_;
};

}  // namespace erlangshen::cuda
