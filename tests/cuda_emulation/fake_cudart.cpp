// The part of the CUDA runtime API the backend and its tests call, on the host (see cuda_emulation.h): one
// "device" whose memory is host memory (a fixed capacity so that out-of-memory paths can be reached); streams and
// events are in streams.cpp (async copies and memsets are queued there like launches). Each allocation is mapped
// on its own pages, 256-byte aligned, ending where an inaccessible guard page begins: a kernel or copy that runs
// past the end of a buffer (by more than the < 256 bytes of alignment slack) stops with SIGSEGV instead of
// silently reading or corrupting a neighbour.
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "tests/cuda_emulation/cuda_emulation.h"

namespace {

// Device memory capacity of the emulated GPU; ERL_EMU_DEVICE_MEMORY_MIB overrides the 16 GiB default.
size_t capacity_bytes() {
  const char* env = std::getenv("ERL_EMU_DEVICE_MEMORY_MIB");
  const size_t mib = env ? std::strtoull(env, nullptr, 10) : 16384;
  return mib << 20;
}

// Allocations of the emulated device (process-wide, like a real device's memory).
struct Mapping {
  void* base;
  size_t bytes;  // mapped, guard page included
  size_t size;   // asked for
};
struct DeviceHeap {
  std::mutex mutex;
  std::unordered_map<void*, Mapping> maps;
  size_t used = 0;
};
DeviceHeap& heap() {
  static DeviceHeap h;
  return h;
}

// Whether p lies in an allocation of the emulated device.
bool is_device_memory(const void* p) {
  DeviceHeap& h = heap();
  std::lock_guard<std::mutex> lock(h.mutex);
  const auto q = reinterpret_cast<uintptr_t>(p);
  for (const auto& [base, m] : h.maps) {
    const auto b = reinterpret_cast<uintptr_t>(base);
    if (q >= b && q < b + m.size) return true;
  }
  return false;
}

}  // namespace

extern "C" {

cudaError_t cudaGetDeviceCount(int* count) {
  *count = 1;
  return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) { return device == 0 ? cudaSuccess : cudaErrorInvalidDevice; }

cudaError_t cudaGetDevice(int* device) {
  *device = 0;
  return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device) {
  if (device != 0) return cudaErrorInvalidDevice;
  std::memset(prop, 0, sizeof(*prop));
  std::snprintf(prop->name, sizeof prop->name, "CUDA emulation on the CPU (tests/cuda_emulation)");
  prop->major = 9;
  prop->minor = 0;
  prop->multiProcessorCount = 1;
  prop->totalGlobalMem = capacity_bytes();
  prop->warpSize = 32;
  prop->maxThreadsPerBlock = 1024;
  prop->sharedMemPerBlock = 48 * 1024;
  return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device) {
  if (device != 0) return cudaErrorInvalidDevice;
  switch (attr) {
    case cudaDevAttrMaxSharedMemoryPerBlockOptin:
      *value = 232448;
      return cudaSuccess;  // an H100's
    case cudaDevAttrMaxSharedMemoryPerBlock:
      *value = 48 * 1024;
      return cudaSuccess;
    case cudaDevAttrMultiProcessorCount:
      *value = 1;
      return cudaSuccess;
    case cudaDevAttrComputeCapabilityMajor:
      *value = 9;
      return cudaSuccess;
    case cudaDevAttrComputeCapabilityMinor:
      *value = 0;
      return cudaSuccess;
    default:
      return cudaErrorInvalidValue;
  }
}

// Kernel attributes: the dynamic shared memory opt-in is checked against the H100's limit, the rest accepted.
cudaError_t cudaFuncSetAttribute(const void*, cudaFuncAttribute attr, int value) {
  if (attr == cudaFuncAttributeMaxDynamicSharedMemorySize && (value < 0 || value > 232448))
    return cudaErrorInvalidValue;
  return cudaSuccess;
}

cudaError_t cudaDeviceGetPCIBusId(char* bus_id, int len, int device) {
  if (device != 0) return cudaErrorInvalidDevice;
  std::snprintf(bus_id, static_cast<size_t>(len), "0000:00:00.0");
  return cudaSuccess;
}

const char* cudaGetErrorString(cudaError_t error) {
  switch (error) {
    case cudaSuccess:
      return "no error";
    case cudaErrorMemoryAllocation:
      return "out of memory (emulated device)";
    case cudaErrorInvalidDevice:
      return "invalid device ordinal (emulated device)";
    case cudaErrorInvalidValue:
      return "invalid argument (emulated device)";
    default:
      return "error (emulated device)";
  }
}

cudaError_t cudaGetLastError() { return cudaSuccess; }
cudaError_t cudaPeekAtLastError() { return cudaSuccess; }

cudaError_t cudaMalloc(void** ptr, size_t size) {
  DeviceHeap& h = heap();
  std::lock_guard<std::mutex> lock(h.mutex);
  *ptr = nullptr;
  if (h.used + size > capacity_bytes()) return cudaErrorMemoryAllocation;
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  const size_t body = (size + 255) / 256 * 256, pages = (body + page - 1) / page * page;
  void* base = mmap(nullptr, pages + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (base == MAP_FAILED) return cudaErrorMemoryAllocation;
  char* guard = static_cast<char*>(base) + pages;
  mprotect(guard, page, PROT_NONE);
  void* p = guard - body;
  // A fresh allocation holds 0xff bytes (NaN as fp32 or bf16), not the zeros of a new mapping: a kernel that reads
  // device memory nobody wrote gets NaNs, as it may get garbage on a GPU.
  std::memset(p, 0xff, body);
  h.maps[p] = Mapping{base, pages + page, size};
  h.used += size;
  *ptr = p;
  return cudaSuccess;
}

cudaError_t cudaFree(void* ptr) {
  if (ptr == nullptr) return cudaSuccess;
  erl_emu::finish_device();  // cudaFree synchronises the device: queued work may still use the memory
  DeviceHeap& h = heap();
  std::lock_guard<std::mutex> lock(h.mutex);
  auto it = h.maps.find(ptr);
  if (it == h.maps.end()) return cudaErrorInvalidValue;
  h.used -= it->second.size;
  munmap(it->second.base, it->second.bytes);
  h.maps.erase(it);
  return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
  DeviceHeap& h = heap();
  std::lock_guard<std::mutex> lock(h.mutex);
  *total_bytes = capacity_bytes();
  *free_bytes = *total_bytes - h.used;
  return cudaSuccess;
}

cudaError_t cudaMemcpy(void* dst, const void* src, size_t count, cudaMemcpyKind) {
  if (count) std::memmove(dst, src, count);
  return cudaSuccess;
}
// Queued on the stream. A source in host memory is read now (a GPU stages pageable memory before the call
// returns, so the caller may reuse it at once); device memory is read when the copy runs.
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t count, cudaMemcpyKind, cudaStream_t stream) {
  if (count == 0) return cudaSuccess;
  if (!is_device_memory(src)) {
    auto staged = std::make_shared<std::vector<unsigned char>>(static_cast<const unsigned char*>(src),
                                                               static_cast<const unsigned char*>(src) + count);
    erl_emu::submit(stream, [dst, staged] { std::memcpy(dst, staged->data(), staged->size()); });
  } else {
    erl_emu::submit(stream, [dst, src, count] { std::memmove(dst, src, count); });
  }
  return cudaSuccess;
}
cudaError_t cudaMemset(void* ptr, int value, size_t count) {
  if (count) std::memset(ptr, value, count);
  return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void* ptr, int value, size_t count, cudaStream_t stream) {
  if (count) erl_emu::submit(stream, [ptr, value, count] { std::memset(ptr, value, count); });
  return cudaSuccess;
}

}  // extern "C"
