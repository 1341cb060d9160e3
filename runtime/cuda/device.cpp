// Device memory and device facts (see device.h).
#include "runtime/cuda/device.h"

#include <cuda_runtime.h>

#include <atomic>
#include <cstdio>

#include "runtime/check.h"

namespace erlangshen::cuda {
namespace {

std::atomic<int64_t> g_current{0}, g_peak{0};

void check(cudaError_t e, const char* what) {
  ERL_CHECK(e == cudaSuccess, "CUDA error in " << what << ": " << cudaGetErrorString(e));
}
cudaStream_t as_stream(void* s) { return static_cast<cudaStream_t>(s); }

}  // namespace

void* device_malloc(size_t bytes, const char* what) {
  void* p = nullptr;
  const cudaError_t e = cudaMalloc(&p, bytes);
  if (e != cudaSuccess) {
    cudaGetLastError();
    char size[32];
    std::snprintf(size, sizeof size, "%.2f GiB", static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0));
    ERL_FAIL("cannot allocate " << size << " of GPU memory for " << what << ": " << cudaGetErrorString(e));
  }
  const int64_t now = g_current += static_cast<int64_t>(bytes);
  int64_t peak = g_peak.load();
  while (now > peak && !g_peak.compare_exchange_weak(peak, now)) {
  }
  return p;
}

void device_free(void* p, size_t bytes) {
  if (p == nullptr) return;
  cudaFree(p);
  g_current -= static_cast<int64_t>(bytes);
}

void copy_device_to_host(void* dst, const void* src, size_t bytes, void* stream) {
  if (bytes == 0) return;
  check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, as_stream(stream)), "cudaMemcpyAsync (to host)");
  check(cudaStreamSynchronize(as_stream(stream)), "cudaStreamSynchronize");
}

void copy_host_to_device(void* dst, const void* src, size_t bytes, void* stream) {
  if (bytes == 0) return;
  // From pageable memory this returns once `src` has been staged, so the caller may reuse it.
  check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, as_stream(stream)), "cudaMemcpyAsync (to device)");
}

void copy_device_to_device(void* dst, const void* src, size_t bytes, void* stream) {
  if (bytes == 0) return;
  check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, as_stream(stream)), "cudaMemcpyAsync (on device)");
}

void memset_zero(void* p, size_t bytes, void* stream) {
  if (bytes == 0) return;
  check(cudaMemsetAsync(p, 0, bytes, as_stream(stream)), "cudaMemsetAsync");
}

void stream_synchronize(void* stream) { check(cudaStreamSynchronize(as_stream(stream)), "cudaStreamSynchronize"); }

void* event_create() {
  cudaEvent_t e = nullptr;
  check(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "cudaEventCreateWithFlags");
  return e;
}
void event_destroy(void* event) {
  if (event) cudaEventDestroy(static_cast<cudaEvent_t>(event));
}
void event_record(void* event, void* stream) {
  check(cudaEventRecord(static_cast<cudaEvent_t>(event), as_stream(stream)), "cudaEventRecord");
}
void stream_wait_event(void* stream, void* event) {
  check(cudaStreamWaitEvent(as_stream(stream), static_cast<cudaEvent_t>(event), 0), "cudaStreamWaitEvent");
}

AllocationStats allocation_stats() { return {g_current.load(), g_peak.load()}; }

double dense_bf16_peak_tflops(const std::string& name) {
  struct Row {
    const char* key;
    double tflops;
  };
  // First match wins: the specific variants come before the family name.
  const Row rows[] = {{"H100 PCIe", 756}, {"H100 NVL", 835}, {"H100", 989}, {"H200", 989}, {"H800", 989},
                      {"GH200", 989},     {"A100", 312},      {"L40S", 362}, {"A10", 125}};
  for (const Row& r : rows)
    if (name.find(r.key) != std::string::npos) return r.tflops;
  return 0.0;
}

std::string device_name(int device) {
  cudaDeviceProp p{};
  check(cudaGetDeviceProperties(&p, device), "cudaGetDeviceProperties");
  return p.name;
}

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return n;
}

std::string device_pci_bus_id(int device) {
  char id[32] = {};
  check(cudaDeviceGetPCIBusId(id, sizeof id, device), "cudaDeviceGetPCIBusId");
  return id;
}

}  // namespace erlangshen::cuda
