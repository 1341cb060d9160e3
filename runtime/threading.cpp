#include "runtime/threading.h"

#include <omp.h>

extern "C" void openblas_set_num_threads(int);

namespace erlangshen {

int set_compute_threads(int threads) {
  if (threads <= 0) threads = omp_get_num_procs();
  omp_set_num_threads(threads);
  openblas_set_num_threads(1);
  return threads;
}

int compute_threads() { return omp_get_max_threads(); }

}  // namespace erlangshen
