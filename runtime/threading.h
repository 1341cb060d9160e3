// CPU thread control. Our kernels parallelise with OpenMP; OpenBLAS runs single-threaded inside each
// OpenMP thread (we split GEMMs into row blocks ourselves), so one knob sets the whole process.
#pragma once

namespace erlangshen {

// Sets the number of compute threads and returns the number in effect. 0: OMP_NUM_THREADS when set, else the
// cores of this node divided by the ranks the launcher put on it.
int set_compute_threads(int threads);
int compute_threads();

}  // namespace erlangshen
