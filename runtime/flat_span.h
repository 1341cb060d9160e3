// A run of elements of a flat buffer (one parameter tensor, or the part of it in a ZeRO-1 shard), as the
// multi-tensor optimizer ops take them: one launch and one host synchronisation for the whole parameter table
// instead of one per tensor (runtime/cpu/kernels.h: adamw_update_spans, sum_squares_spans).
#pragma once
#include <cstdint>

namespace erlangshen {

struct FlatSpan {
  int64_t offset = 0;  // first element, relative to the base pointers the op is given
  int64_t n = 0;       // elements
  bool decay = false;  // AdamW: apply weight decay (weights yes; biases and LayerNorm parameters no)
};

}  // namespace erlangshen
