#include "runtime/threading.h"

#include <omp.h>

#include <algorithm>
#include <cstdlib>

extern "C" void openblas_set_num_threads(int);

namespace erlangshen {
namespace {

// Processes of this job on this node, from the launcher's environment (1 when started by hand).
int ranks_on_this_node() {
  for (const char* var : {"OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "SLURM_NTASKS_PER_NODE"}) {
    if (const char* v = std::getenv(var)) {
      const int n = std::atoi(v);
      if (n > 0) return n;
    }
  }
  return 1;
}

}  // namespace

int set_compute_threads(int threads) {
  if (threads <= 0) {
    // OMP_NUM_THREADS wins; otherwise the node's cores are shared by the ranks on it.
    threads = std::getenv("OMP_NUM_THREADS") ? omp_get_max_threads()
                                             : std::max(1, omp_get_num_procs() / ranks_on_this_node());
  }
  omp_set_num_threads(threads);
  openblas_set_num_threads(1);
  return threads;
}

int compute_threads() { return omp_get_max_threads(); }

}  // namespace erlangshen
