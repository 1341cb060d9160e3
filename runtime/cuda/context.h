// The CUDA backend's per-stream state, owned by the caller (the trainer / bench / a test), never global:
// one CUDA stream, a cuBLASLt handle with its workspace and a cache of chosen GEMM algorithms, a device scratch
// block for two-stage reductions, and the math and determinism modes. Pass it to ops through
// Exec{Device::CUDA, ctx.stream(), &ctx}. One Context serves one stream: ops on it run in order, so they may
// share the scratch; two streams need two Contexts.
//
// Plain C++ header (no CUDA headers): host code creates Contexts without nvcc.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace erlangshen::cuda {

class OpProfiler;

// How GEMMs compute on fp32 storage.
enum class MathMode {
  FP32,  // fp32 inputs and accumulation (SGEMM): the parity path, 1e-5 relative against the CPU backend
  BF16,  // inputs rounded to bf16 (round to nearest even) into the Context's staging, bf16 tensor cores with fp32
         // accumulate and fp32 output. Measured on an H100 (erlangshen_gemm_probe, the 1.3B layer's 12 GEMMs):
         // 712 TFLOP/s, against 303 for cuBLASLt's own rounding of fp32 operands (COMPUTE_32F_FAST_16BF).
};
const char* math_mode_name(MathMode m);

struct ContextOptions {
  int device = 0;                            // CUDA device ordinal (launch picks it by local rank)
  MathMode math = MathMode::BF16;
  // Deterministic mode: GEMM algorithms restricted to reduction schemes without atomics and fixed per shape
  // for the Context's lifetime. The backend's own reductions are always fixed-order.
  bool deterministic = false;
  // Outside deterministic mode, the second call of each GEMM configuration times cuBLASLt's top heuristic
  // candidates on its own operands and keeps the fastest (gemm.cu): into its own output when beta = 0, into the
  // scratch when beta != 0 and the output fits there (the 1.3B FFN weight gradient, 64 MiB, does).
  bool gemm_autotune = true;
  // The backward GEMMs' fused epilogues (matmul.cu): the GeLU derivative on the FFN-out dgrad (DGELU) and the bias
  // gradients on the weight gradients (BGRADB). false: the separate passes (train.backward_epilogues).
  bool backward_epilogues = true;
  // The LayerNorm backward in one pass over dy and x (layernorm.cu): a block walks a few rows, forms their dinp and
  // keeps its columns' partial dw / db sums in registers, instead of a second pass that reads dy and x again for the
  // column sums (4 bytes an element of the 8 a bf16 dy and x take). Off until a GPU run has timed it
  // (tests/bench/layernorm_probe.cu): a one-pass form with a block per ~100 rows measured slower on an H200.
  bool fused_layernorm_columns = false;
  // The unfused attention with bf16 probabilities and the register row kernels saves its bf16 scores S and each
  // row's (max, 1 / sum) instead of P, and the backward recomputes P from them (attention.cu): the same bits, one
  // write of the B x NH x T x T tensor less a layer. false: P is saved (tests compare it with the CPU's).
  bool attention_saves_scores = true;
  // Where the attention saves its scores (above), its forward runs as one kernel (attention_fused_forward.h: Q, K, V
  // read once, S written once, softmax, dropout and the product with V in registers) instead of the QK^T GEMM, the
  // softmax row kernel and the PV GEMM; the backward is the same. Off until a GPU run has timed it
  // (tests/bench/attention_probe.cu, and run_checks.sh's trainer A/B: train.fused_attention_forward).
  bool fused_attention_forward = false;
  // Warps (16 query rows each) in a block of the fused forward: 0 its choice by head dim (8 at 256, else 4), or 4 or
  // 8 (the attention probe times both).
  int fused_attention_forward_warps = 0;
  // Where the attention saves its scores and T <= 128 (bert-base's seq 128, fine-tuning), its backward runs as one
  // kernel a (sample, head) (attention_fused_backward.h: dP, dS and Pd in registers and shared memory, the four
  // products on mma.sync) instead of 4 NH small GEMM launches and a row pass over the T x T tensors. Off until a
  // GPU run has timed it (run_checks.sh's bert-base A/B: train.fused_attention_backward).
  bool fused_attention_backward = false;
  // The stream's priority: the device's greatest (the compute stream, and the NCCL streams of
  // parallel/nccl_communicator.cpp), or the default, lowest (the optimizer's side stream, runtime/side_stream.h), so
  // that where the two have blocks waiting to run the compute stream's go first and the overlapped AdamW fills
  // what the forward leaves idle instead of delaying it. No effect while one stream runs.
  bool high_priority = true;
  size_t gemm_workspace_bytes = size_t(32) << 20;
  size_t scratch_bytes = size_t(80) << 20;   // two-stage reductions (column sums, sum of squares), GEMM timing
  // A GEMM epilogue's vector output (a weight-gradient GEMM's bias gradient, matmul.cu) before it is added into its
  // destination: 64K floats, more than any bias of the model.
  size_t epilogue_vector_bytes = size_t(256) << 10;
};

class Context {
 public:
  explicit Context(const ContextOptions& options = {});
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  void* stream() const;  // cudaStream_t
  const ContextOptions& options() const { return options_; }
  MathMode math() const { return options_.math; }
  bool deterministic() const { return options_.deterministic; }
  void set_math(MathMode m) { options_.math = m; }
  void synchronize() const;

  // Backend internals (used by runtime/cuda/*.cu).
  void* cublaslt() const;
  void* gemm_workspace() const;
  size_t gemm_workspace_bytes() const { return options_.gemm_workspace_bytes; }
  // Device scratch of at least `bytes`, valid until the next op on this Context; throws if too small.
  void* scratch(size_t bytes, const char* who) const;
  // Device staging for the bf16 copies of GEMM operands (MathMode::BF16), at least `bytes`, valid until the next
  // op. It grows (after synchronising the stream) when a larger GEMM first needs it: a model's shapes are fixed,
  // so that happens during its first step only.
  void* staging(size_t bytes) const;
  // Whether p points into the current staging block (a GEMM fallback that re-carves the staging checks that its
  // operands do not live there).
  bool in_staging(const void* p) const;
  // Whether p points into the scratch (GEMM candidate timing borrows it for a beta != 0 output when no operand
  // lives there).
  bool in_scratch(const void* p) const;
  // Device vector of n floats for a GEMM epilogue's output, valid until the next op; nullptr when n does not fit.
  float* epilogue_vector(size_t n) const;
  struct AlgoCache;
  AlgoCache& algo_cache() const;
  // Per-op GPU times (runtime/cuda/op_profiler.h), when one is attached (the caller owns it); null otherwise.
  void set_profiler(OpProfiler* p) { profiler_ = p; }
  OpProfiler* profiler() const { return profiler_; }

 private:
  ContextOptions options_;
  OpProfiler* profiler_ = nullptr;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Name, SM count, memory and compute capability of the current device, for logs and bench output.
std::string device_description(int device = 0);

}  // namespace erlangshen::cuda
