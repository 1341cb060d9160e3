#include "runtime/ops.h"

namespace erlangshen {

#if !defined(ERLANGSHEN_HAVE_CUDA)
bool cuda_available() { return false; }
#endif

}  // namespace erlangshen
