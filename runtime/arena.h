// Activation arena: one block sized once per (micro-batch, seq-len) shape; no allocation inside a step. The block
// is host memory, or device memory when reserved for Device::CUDA (runtime/device_buffer.h).
//
// Usage: construct in measuring mode, run the allocation sequence once (alloc() returns nullptr-backed
// spans and only counts bytes), then reserve(bytes_needed()) and run the same sequence for real.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "runtime/check.h"
#include "runtime/device_buffer.h"

namespace erlangshen {

class Arena {
 public:
  static constexpr size_t kAlign = 64;

  Arena() = default;
  explicit Arena(size_t bytes) { reserve(bytes); }

  void reserve(size_t bytes, Device device = Device::CPU) {
    bytes = round_up(bytes);
    storage_ = RawMemory();  // free the old block first
    storage_ = RawMemory(device, bytes, "the activation arena");
    capacity_ = bytes;
    used_ = 0;
    peak_ = 0;
  }
  bool measuring() const { return !storage_; }

  template <class T>
  T* alloc(size_t count, const char* what = "") {
    size_t bytes = round_up(count * sizeof(T));
    size_t offset = used_;
    used_ += bytes;
    if (used_ > peak_) peak_ = used_;
    if (measuring()) return nullptr;
    ERL_CHECK(used_ <= capacity_, "activation arena overflow allocating " << what << " (" << used_ << " > "
                                                                           << capacity_ << " bytes)");
    return reinterpret_cast<T*>(storage_.data() + offset);
  }
  // Marks let a phase release what it allocated (scratch reused between layers).
  size_t mark() const { return used_; }
  void release(size_t mark) { used_ = mark; }
  void reset() { used_ = 0; }

  // True when [p, p + bytes) lies inside the reserved block.
  bool contains(const void* p, size_t bytes) const { return span_contains(storage_.data(), capacity_, p, bytes); }

  size_t bytes_needed() const { return peak_; }
  size_t capacity() const { return capacity_; }

 private:
  static size_t round_up(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }
  RawMemory storage_;
  size_t capacity_ = 0, used_ = 0, peak_ = 0;
};

}  // namespace erlangshen
