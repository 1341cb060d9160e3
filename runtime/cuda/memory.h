// Device memory planning for training on one GPU: what a configuration needs, by category, before anything is
// allocated; a report for the log; a clear error (naming the setting that would fit) when it will not fit; and
// one allocation per category (no allocation inside a step).
//
// Categories (this rank's shard of P parameters):
//   parameters (bf16 compute copy)   2 P      refreshed from the master weights after each optimizer step
//   master weights (fp32)            4 P
//   gradients (fp32)                 4 P      fp32 accumulation over micro-batches; all-reduced in place
//   optimizer state (AdamW m, v)     8 P / s  s = DP ranks sharing it (ZeRO-1), else 1
//   activations                      see activation_bytes(): per-layer saved tensors x layers + backward scratch
//   bf16 GEMM operand staging        see gemm_staging_bytes(): the largest GEMM's two operands in bf16
//                                    (Context::staging, MathMode::BF16)
//   workspace                        cuBLASLt workspace + reduction scratch of the backend Context + a reserve
//                                    for the CUDA/cuBLAS/NCCL runtime
// Plain C++ (uses the CUDA runtime API only for allocation and free-memory queries).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "runtime/recompute.h"

namespace erlangshen::cuda {

// Activation recompute modes (runtime/recompute.h).
using erlangshen::parse_recompute;
using erlangshen::Recompute;
using erlangshen::recompute_name;

// Geometry of a pre-LN transformer encoder on one TP rank (generic: no model names here).
struct EncoderShape {
  int hidden = 0;       // C
  int layers = 0;
  int heads_local = 0;  // attention heads on this TP rank
  int head_dim = 0;
  int ffn_local = 0;    // FFN width on this TP rank
  int vocab_local = 0;  // rows of the vocab-parallel output layer on this rank
  double masked_fraction = 0.15;  // share of tokens that reach the output layer (MLM)
  int storage_bytes = 4;          // bytes per saved activation element (4: fp32 storage of the current ops)
  int act_bytes = 4;              // bytes per element of the [act] tensors (model/activations.h: ln1, ln2, qkv, ctx,
                                  // probs, pre, act, dtmp, dctx, dqkv, dact; dln with TP 1): 2 under
                                  // train.activations=bf16
  int residual_bytes = 4;         // bytes per element of the residual stream ([res]: emb and every layer's x1, x2):
                                  // 2 under train.residual=bf16
  bool flash_attention = false;   // train.attention=flash: 2 floats per query row and head saved instead of the
                                  // probabilities, and the fused kernels' scratch (runtime/cuda/flash_attention.h)
};

// Bytes of activations for a (micro_batch, seq_len) step under `recompute`.
int64_t activation_bytes(const EncoderShape& shape, int micro_batch, int seq_len, Recompute recompute);

// Bytes of the Context's bf16 operand staging for a (micro_batch, seq_len) step: 2 x the largest A + B of the
// model's GEMMs.
int64_t gemm_staging_bytes(const EncoderShape& shape, int micro_batch, int seq_len);

struct MemoryPlan {
  struct Item {
    std::string name;
    int64_t bytes = 0;
  };
  std::vector<Item> items;
  int64_t total() const;
  // One line per category plus the total, in GiB, for the start-of-run log.
  std::string report() const;
};

struct TrainingMemoryRequest {
  int64_t params = 0;          // parameters on this rank
  EncoderShape shape;
  int micro_batch = 1;
  int seq_len = 512;
  Recompute recompute = Recompute::None;
  int optimizer_shards = 1;    // ZeRO-1: DP ranks sharing the optimizer state
  // Context: GEMM workspace (32 MiB) + scratch (80 MiB) + epilogue vector (256 KiB), and the optimizer's side
  // stream Context (runtime/side_stream.cpp, train.overlap_optimizer): scratch (4 MiB)
  int64_t workspace_bytes = (int64_t(116) << 20) + (int64_t(256) << 10);
  int64_t reserve_bytes = int64_t(1) << 30;      // CUDA context, cuBLAS, NCCL buffers
};

MemoryPlan plan_training_memory(const TrainingMemoryRequest& request);

// Largest micro-batch (>= 1) whose plan fits in `available` bytes with the request's other settings; 0 if none.
int largest_fitting_micro_batch(TrainingMemoryRequest request, int64_t available, int limit = 4096);

// Throws erlangshen::Error before training when the plan exceeds `available` bytes. The message gives both sizes
// and the first setting that would fit, in this order: a smaller train.micro_batch (same global batch via
// train.grad_accum), train.recompute=selective, train.recompute=full, parallel.zero1=true, a larger parallel.tp.
void check_fits(const TrainingMemoryRequest& request, int64_t available);

// A log line when the plan fits with room for at least twice the micro-batch (naming the largest that fits, up to
// 4x); empty otherwise.
std::string headroom_hint(const TrainingMemoryRequest& request, int64_t available);

// Free and total bytes of the current device (cudaMemGetInfo).
void device_memory_info(int64_t* free_bytes, int64_t* total_bytes);

// One cudaMalloc, freed on destruction.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(int64_t bytes, const char* what);
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(o.ptr_), bytes_(o.bytes_) { o.ptr_ = nullptr, o.bytes_ = 0; }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  template <class T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }
  int64_t bytes() const { return bytes_; }

 private:
  void* ptr_ = nullptr;
  int64_t bytes_ = 0;
};

// The training buffers of one rank: one allocation per category of the plan.
struct TrainingBuffers {
  DeviceBuffer params_bf16, master, grads, optimizer, activations;
};
// Checks the plan against free memory first (check_fits), then allocates.
TrainingBuffers allocate_training_buffers(const TrainingMemoryRequest& request);

}  // namespace erlangshen::cuda
