// Where ops run (runtime/ops.h) and where buffers live (runtime/device_buffer.h): the device and, for CUDA, the
// stream and the caller-owned backend context. Plain C++, no CUDA headers.
#pragma once

namespace erlangshen {

enum class Device { CPU, CUDA };

// Where ops run: the device and, for CUDA, the stream (cudaStream_t as void*) and the caller-owned backend
// context (a cuda::Context*, runtime/cuda/context.h: cuBLASLt handle, workspace, math and deterministic modes).
// With a Context: Exec{Device::CUDA, ctx.stream(), &ctx}.
struct Exec {
  Device device = Device::CPU;
  void* stream = nullptr;
  void* backend_context = nullptr;
  bool on_device() const { return device == Device::CUDA; }
};

// True when this build has the CUDA backend and a GPU is visible.
bool cuda_available();

}  // namespace erlangshen
