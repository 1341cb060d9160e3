// Host-or-device memory (see device_buffer.h). The device side is runtime/cuda/device.cpp.
#include "runtime/device_buffer.h"

#include <cstdlib>

#if defined(ERLANGSHEN_HAVE_CUDA)
#include "runtime/cuda/device.h"
#endif

namespace erlangshen {
#if !defined(ERLANGSHEN_HAVE_CUDA)
namespace {

[[noreturn]] void no_cuda() {
  throw Error("device memory requested but this build has no CUDA backend (configure with -DERLANGSHEN_CUDA=ON)");
}

}  // namespace
#endif

RawMemory::RawMemory(Device device, size_t bytes, const char* what) : bytes_(bytes), device_(device) {
  if (device == Device::CUDA) {
#if defined(ERLANGSHEN_HAVE_CUDA)
    ptr_ = static_cast<char*>(cuda::device_malloc(bytes == 0 ? kAlign : bytes, what));
#else
    no_cuda();
#endif
  } else {
    const size_t rounded = (bytes + kAlign - 1) / kAlign * kAlign;
    ptr_ = static_cast<char*>(std::aligned_alloc(kAlign, rounded == 0 ? kAlign : rounded));
    ERL_CHECK(ptr_, "cannot allocate " << what << " (" << bytes << " bytes)");
  }
}

RawMemory::~RawMemory() { free(); }

RawMemory& RawMemory::operator=(RawMemory&& o) noexcept {
  if (this != &o) {
    free();
    ptr_ = o.ptr_, bytes_ = o.bytes_, device_ = o.device_;
    o.ptr_ = nullptr, o.bytes_ = 0;
  }
  return *this;
}

void RawMemory::free() {
  if (!ptr_) return;
#if defined(ERLANGSHEN_HAVE_CUDA)
  if (device_ == Device::CUDA) cuda::device_free(ptr_, bytes_ == 0 ? kAlign : bytes_);
  else std::free(ptr_);
#else
  std::free(ptr_);
#endif
  ptr_ = nullptr;
}

void copy_bytes_to_host(const Exec& x, void* host_dst, const void* src, size_t bytes) {
  if (!x.on_device()) {
    if (bytes) std::memcpy(host_dst, src, bytes);
    return;
  }
#if defined(ERLANGSHEN_HAVE_CUDA)
  cuda::copy_device_to_host(host_dst, src, bytes, x.stream);
#else
  no_cuda();
#endif
}

void copy_bytes_from_host(const Exec& x, void* dst, const void* host_src, size_t bytes) {
  if (!x.on_device()) {
    if (bytes) std::memcpy(dst, host_src, bytes);
    return;
  }
#if defined(ERLANGSHEN_HAVE_CUDA)
  cuda::copy_host_to_device(dst, host_src, bytes, x.stream);
#else
  no_cuda();
#endif
}

void zero_bytes(const Exec& x, void* p, size_t bytes) {
  if (!x.on_device()) {
    if (bytes) std::memset(p, 0, bytes);
    return;
  }
#if defined(ERLANGSHEN_HAVE_CUDA)
  cuda::memset_zero(p, bytes, x.stream);
#else
  no_cuda();
#endif
}

void synchronize(const Exec& x) {
  if (!x.on_device()) return;
#if defined(ERLANGSHEN_HAVE_CUDA)
  cuda::stream_synchronize(x.stream);
#else
  no_cuda();
#endif
}

}  // namespace erlangshen
