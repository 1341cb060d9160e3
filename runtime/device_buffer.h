// Memory that lives where an Exec runs: host memory for Device::CPU, device memory for Device::CUDA (allocated
// through runtime/cuda/device.h). The model keeps its parameters, gradients and arenas in these, the optimizer
// its moments, so one code path serves both backends; the few places that need values on the host (losses,
// checkpoints, initialisation) copy explicitly with the helpers below, which are no-ops or plain copies on CPU.
#pragma once
#include <cstddef>
#include <cstring>
#include <type_traits>
#include <utility>
#include <vector>

#include "runtime/check.h"
#include "runtime/exec.h"

namespace erlangshen {

// True when the bytes [p, p + bytes) lie inside the block [base, base + size) (host or device addresses alike).
inline bool span_contains(const void* base, size_t size, const void* p, size_t bytes) {
  const char *b = static_cast<const char*>(base), *c = static_cast<const char*>(p);
  return b != nullptr && c >= b && c + bytes <= b + size;
}

// Raw bytes on the host (64-byte aligned) or on the CUDA device; freed on destruction.
class RawMemory {
 public:
  static constexpr size_t kAlign = 64;
  RawMemory() = default;
  RawMemory(Device device, size_t bytes, const char* what);
  ~RawMemory();
  RawMemory(RawMemory&& o) noexcept { *this = std::move(o); }
  RawMemory& operator=(RawMemory&& o) noexcept;
  RawMemory(const RawMemory&) = delete;
  RawMemory& operator=(const RawMemory&) = delete;

  char* data() const { return ptr_; }
  size_t bytes() const { return bytes_; }
  Device device() const { return device_; }
  explicit operator bool() const { return ptr_ != nullptr; }

 private:
  void free();
  char* ptr_ = nullptr;
  size_t bytes_ = 0;
  Device device_ = Device::CPU;
};

// Byte copies between host memory and the memory of `x` (plain memcpy when x is the CPU).
//   copy_bytes_to_host:   waits for the work queued on x before copying, returns when the copy is done.
//   copy_bytes_from_host: enqueued on x's stream; `host_src` may be reused as soon as it returns.
void copy_bytes_to_host(const Exec& x, void* host_dst, const void* src, size_t bytes);
void copy_bytes_from_host(const Exec& x, void* dst, const void* host_src, size_t bytes);
void zero_bytes(const Exec& x, void* p, size_t bytes);
// Waits for the work queued on x (no-op on the CPU, where ops are synchronous).
void synchronize(const Exec& x);

template <class T>
void copy_to_host(const Exec& x, T* host_dst, const T* src, size_t n) {
  static_assert(std::is_trivially_copyable_v<T>);
  if (host_dst != src) copy_bytes_to_host(x, host_dst, src, n * sizeof(T));
}
template <class T>
void copy_from_host(const Exec& x, T* dst, const T* host_src, size_t n) {
  static_assert(std::is_trivially_copyable_v<T>);
  if (dst != host_src) copy_bytes_from_host(x, dst, host_src, n * sizeof(T));
}

// Inputs that arrive on the host (token ids, masks, positions): on the CPU the host array itself (no copy); on
// CUDA copied into `staging` (n elements of x's memory), which is returned.
template <class T>
const T* stage_input(const Exec& x, T* staging, const T* host, size_t n) {
  if (!x.on_device()) return host;
  copy_from_host(x, staging, host, n);
  return staging;
}

// Small results read on the host (loss statistics, logits): on the CPU `src` itself (no copy); on CUDA copied
// into `scratch` (resized to n) after the queued work, and scratch.data() is returned.
template <class T>
const T* host_view(const Exec& x, const T* src, size_t n, std::vector<T>& scratch) {
  if (!x.on_device()) return src;
  scratch.resize(n);
  copy_to_host(x, scratch.data(), src, n);
  return scratch.data();
}

// n zero-initialised elements of T where `x` runs: a std::vector on the CPU (as before device support, so the
// CPU path is unchanged), one device allocation on CUDA.
template <class T>
class Buffer {
  static_assert(std::is_trivially_copyable_v<T>);

 public:
  Buffer() = default;
  Buffer(const Exec& x, size_t n, const char* what = "buffer") : exec_(x), n_(n) {
    if (x.on_device()) {
      device_ = RawMemory(Device::CUDA, n * sizeof(T), what);
      zero_bytes(x, device_.data(), n * sizeof(T));
    } else {
      host_.assign(n, T{});
    }
  }

  T* data() { return exec_.on_device() ? reinterpret_cast<T*>(device_.data()) : host_.data(); }
  const T* data() const { return exec_.on_device() ? reinterpret_cast<const T*>(device_.data()) : host_.data(); }
  size_t size() const { return n_; }
  bool empty() const { return n_ == 0; }
  bool on_device() const { return exec_.on_device(); }
  const Exec& exec() const { return exec_; }
  // True when [p, p + bytes) lies inside this buffer.
  bool contains(const void* p, size_t bytes) const {
    return !empty() && span_contains(data(), n_ * sizeof(T), p, bytes);
  }

  // host_dst (n) <- elements [offset, offset + n).
  void copy_to_host(T* host_dst, size_t offset, size_t n) const {
    ERL_CHECK(offset + n <= n_, "Buffer::copy_to_host out of range");
    erlangshen::copy_to_host(exec_, host_dst, data() + offset, n);
  }
  // elements [offset, offset + n) <- host_src (n).
  void copy_from_host(const T* host_src, size_t offset, size_t n) {
    ERL_CHECK(offset + n <= n_, "Buffer::copy_from_host out of range");
    erlangshen::copy_from_host(exec_, data() + offset, host_src, n);
  }
  std::vector<T> to_host() const {
    std::vector<T> h(n_);
    copy_to_host(h.data(), 0, n_);
    return h;
  }

 private:
  Exec exec_;
  size_t n_ = 0;
  std::vector<T> host_;
  RawMemory device_;
};

}  // namespace erlangshen
