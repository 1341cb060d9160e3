// A sequential stream of random words from Philox4x32-10 at (key, index): draw j of the stream is word j % 4 of
// philox_at(key, index, j / 4). The stream of a sample depends only on (key, sample id), never on threads.
#pragma once
#include <cstdint>

#include "runtime/philox.h"

namespace erlangshen::data {

class PhiloxStream {
 public:
  PhiloxStream(PhiloxKey key, uint64_t index) : key_(key), index_(index) {}
  uint32_t next() {
    if (pos_ == 4) {
      block_ = philox_at(key_, index_, sub_++);
      pos_ = 0;
    }
    return block_.v[pos_++];
  }
  // Uniform in [0, 1) with 24 bits.
  double uniform() { return static_cast<double>(next() >> 8) * (1.0 / 16777216.0); }
  // Uniform integer in [0, n) (multiply-shift; bias < n / 2^32).
  uint32_t below(uint32_t n) { return static_cast<uint32_t>((static_cast<uint64_t>(next()) * n) >> 32); }
  // Fisher-Yates shuffle of v[0, n).
  template <typename T>
  void shuffle(T* v, size_t n) {
    for (size_t i = n; i > 1; --i) {
      size_t j = below(static_cast<uint32_t>(i));
      T t = v[i - 1];
      v[i - 1] = v[j];
      v[j] = t;
    }
  }

 private:
  PhiloxKey key_;
  uint64_t index_;
  uint32_t sub_ = 0;
  Philox4 block_{};
  int pos_ = 4;
};

}  // namespace erlangshen::data
