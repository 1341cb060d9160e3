// The compute backend of a run, chosen by `train.device`: the CPU, or one CUDA GPU with its backend Context
// (runtime/cuda/context.h: stream, cuBLASLt, bf16 tensor-core GEMMs). Owned by the launch command and handed to
// the trainer as an Exec; nothing here is global.
#pragma once
#include <memory>
#include <string>

#include "runtime/config.h"
#include "runtime/exec.h"

namespace erlangshen {

// The CUDA kernel choices of a run's config (runtime/config.h; no effect on the CPU).
struct BackendOptions {
  bool deterministic = false;            // train.deterministic: GEMMs without atomic split-K, fixed per shape
  bool backward_epilogues = true;        // train.backward_epilogues
  bool fused_attention_forward = false;   // train.fused_attention_forward
  bool fused_attention_backward = false;  // train.fused_attention_backward
  static BackendOptions of(const TrainConfig& t) {
    return BackendOptions{t.deterministic, t.backward_epilogues, t.fused_attention_forward,
                          t.fused_attention_backward};
  }
};

class Backend {
 public:
  // device: "cpu" or "cuda" (the value of train.device); gpu: the CUDA device ordinal (the local rank);
  // source: the config file, for messages. Throws an Error naming train.device when the build has no CUDA
  // backend or no GPU is visible.
  Backend(const std::string& device, int gpu = 0, const std::string& source = "", const BackendOptions& options = {});
  // The backend a run's config asks for: train.device and the kernel choices, messages naming config.source.
  explicit Backend(const Config& config, int gpu = 0)
      : Backend(config.train.device, gpu, config.source, BackendOptions::of(config.train)) {}
  ~Backend();
  Backend(const Backend&) = delete;
  Backend& operator=(const Backend&) = delete;

  Exec exec() const { return exec_; }
  bool cuda() const { return exec_.on_device(); }
  // "cpu", or the GPU's name, SMs, memory and the GEMM math mode.
  std::string describe() const;
  // CUDA: the GPU's name (for the dense peak table, runtime/cuda/device.h); "" on the CPU.
  std::string gpu_name() const;
  // CUDA: the PCI bus id of this rank's GPU (one physical device, whatever CUDA_VISIBLE_DEVICES renumbers);
  // "" on the CPU.
  std::string gpu_bus_id() const;
  // Which fused attention kernels a run of `config` takes here: the unfused attention's forward
  // (train.fused_attention_forward) and backward (train.fused_attention_backward) where that attention saves bf16
  // scores (bf16 storage, train.attention=unfused, seq_len <= 1024, the Context's attention_saves_scores) and the
  // kernel takes the shape on this GPU (the backward: seq_len <= 128). Both false on the CPU.
  struct FusedAttention {
    bool forward = false, backward = false;
  };
  FusedAttention fused_attention(const Config& config) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  Exec exec_;
};

}  // namespace erlangshen
