// Which attention implementation the model runs (train.attention). Header-only: the CUDA memory planner uses it
// without the config loader.
//   Unfused  every backend: S = Q K^T and P go through memory (cuBLASLt products per head on CUDA, plus fused
//            softmax / mask / dropout row kernels); P is saved for backward (B, NH, T, T).
//   Flash    CUDA only (runtime/cuda/flash_attention.h): tiles on the tensor cores, S and P stay on chip; saves two
//            floats per query row instead of P and recomputes P in backward. Needs bf16 math and head dim 64, 128
//            or 256. The same dropout bits; results within bf16 rounding of Unfused.
#pragma once
#include <string>

#include "runtime/check.h"

namespace erlangshen {

enum class AttentionKernel { Unfused, Flash };

// "unfused" | "flash"; throws Error otherwise
inline AttentionKernel parse_attention_kernel(const std::string& name) {
  if (name == "unfused") return AttentionKernel::Unfused;
  if (name == "flash") return AttentionKernel::Flash;
  throw Error("unknown attention kernel '" + name + "' (expected unfused or flash)");
}

inline const char* attention_kernel_name(AttentionKernel k) {
  return k == AttentionKernel::Flash ? "flash" : "unfused";
}

}  // namespace erlangshen
