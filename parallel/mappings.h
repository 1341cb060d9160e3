// Tensor-parallel communication patterns as named forward/backward pairs (Megatron's mappings), kept apart
// from the layers that use them. Our model has no autograd, so each pair is two functions that the layer
// calls in its forward and in its backward.
//
//   copy_to_tp:      forward identity          backward all-reduce(sum)   (input of a column-parallel layer)
//   reduce_from_tp:  forward all-reduce(sum)   backward identity          (output of a row-parallel layer)
#pragma once
#include "parallel/communicator.h"

namespace erlangshen::tp {

template <class T>
inline void copy_to_tp_forward(Communicator&, T*, size_t) {}
template <class T>
inline void copy_to_tp_backward(Communicator& tp, T* grad, size_t n) {
  if (tp.size() > 1) tp.all_reduce(grad, n, ReduceOp::Sum);
}
template <class T>
inline void reduce_from_tp_forward(Communicator& tp, T* x, size_t n) {
  if (tp.size() > 1) tp.all_reduce(x, n, ReduceOp::Sum);
}
template <class T>
inline void reduce_from_tp_backward(Communicator&, T*, size_t) {}

}  // namespace erlangshen::tp
