// Static block partitioning over OpenMP threads (deterministic: block boundaries depend only on the
// thread count and the size).
#pragma once
#include <omp.h>

#include <algorithm>
#include <cstdint>

namespace erlangshen::cpu {

// Calls fn(begin, end) once per thread on contiguous blocks of [0, n), block sizes multiples of `align`.
template <class Fn>
void parallel_blocks(int64_t n, int64_t align, Fn&& fn) {
  const int threads = std::max<int64_t>(1, std::min<int64_t>(omp_get_max_threads(), (n + align - 1) / align));
  if (threads == 1) {
    fn(int64_t{0}, n);
    return;
  }
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num();
    const int64_t units = (n + align - 1) / align;
    const int64_t begin = std::min(n, units * t / threads * align);
    const int64_t end = std::min(n, units * (t + 1) / threads * align);
    if (begin < end) fn(begin, end);
  }
}

}  // namespace erlangshen::cpu
