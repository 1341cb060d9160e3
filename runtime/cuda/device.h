// Device memory and device facts for host code: counted allocations, copies on a stream, the dense bf16 peak of
// known GPUs. Plain C++ header (the implementation uses the CUDA runtime API); runtime/device_buffer.h builds
// the typed host-or-device buffers of the model on it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace erlangshen::cuda {

// cudaMalloc of `bytes` (counted in allocation_stats()); the error names `what` and the size.
void* device_malloc(size_t bytes, const char* what);
void device_free(void* p, size_t bytes);
// dst (host) <- src (device), enqueued on `stream` after its earlier work; returns when the copy is done.
void copy_device_to_host(void* dst, const void* src, size_t bytes, void* stream);
// dst (device) <- src (host), enqueued on `stream`; `src` may be reused as soon as this returns.
void copy_host_to_device(void* dst, const void* src, size_t bytes, void* stream);
void copy_device_to_device(void* dst, const void* src, size_t bytes, void* stream);
void memset_zero(void* p, size_t bytes, void* stream);
void stream_synchronize(void* stream);
// Events that order one stream's work after another's (cudaEvent_t as void*; no timing): the work `stream` gets
// after stream_wait_event starts after the work the event's stream had when event_record was called.
void* event_create();
void event_destroy(void* event);
void event_record(void* event, void* stream);
void stream_wait_event(void* stream, void* event);

// Bytes held by device_malloc now and at most so far in this process.
struct AllocationStats {
  int64_t current = 0, peak = 0;
};
AllocationStats allocation_stats();

// Dense bf16 tensor-core peak in TFLOP/s (no sparsity) for a device name ("NVIDIA H100 80GB HBM3", ...);
// 0 when the name is not in the table.
double dense_bf16_peak_tflops(const std::string& device_name);
// cudaGetDeviceProperties(device).name
std::string device_name(int device = 0);
// Visible CUDA devices (0 when none or no driver).
int device_count();
// PCI bus id of a device ("0000:1B:00.0"): names one physical GPU whatever CUDA_VISIBLE_DEVICES renumbers.
std::string device_pci_bus_id(int device);

}  // namespace erlangshen::cuda
