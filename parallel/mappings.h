// Tensor-parallel communication patterns as named forward/backward pairs (Megatron's mappings), kept apart
// from the layers that use them. Our model has no autograd, so each pair is two functions that the layer
// calls in its forward and in its backward. p = TP group size, rank i holds the i-th chunk.
//
//   copy_to_tp:      forward identity          backward all-reduce(sum)   (input of a column-parallel layer)
//   reduce_from_tp:  forward all-reduce(sum)   backward identity          (output of a row-parallel layer)
//   scatter_to_tp:   forward split last dim    backward all-gather last dim
//   gather_from_tp:  forward all-gather last dim  backward split last dim
// where, for X (N, C) = [X_0 ... X_{p-1}] split along its last dimension into C/p-column chunks,
// split(X) = X_i on rank i and all-gather(X_i) = X on every rank.
#pragma once
#include <algorithm>
#include <vector>

#include "parallel/communicator.h"
#include "runtime/act.h"

namespace erlangshen::tp {

template <class T>
inline void copy_to_tp_forward(Communicator&, T*, size_t) {}
template <class T>
inline void copy_to_tp_forward(Communicator&, Act<T>, size_t) {}
template <class T>
inline void copy_to_tp_backward(Communicator& tp, T* grad, size_t n) {
  if (tp.size() > 1) tp.all_reduce(grad, n, ReduceOp::Sum);
}
// An Act reduces in T storage only (the communicators carry T); bf16 storage is for one TP rank. `mapping` names
// the caller in the error.
template <class T>
inline void all_reduce_act(Communicator& tp, Act<T> x, size_t n, const char* mapping) {
  if (tp.size() == 1) return;
  ERL_CHECK(!x.is_bf16(), mapping << ": bf16 storage with parallel.tp > 1");
  tp.all_reduce(x.f, n, ReduceOp::Sum);
}
template <class T>
inline void copy_to_tp_backward(Communicator& tp, Act<T> grad, size_t n) {
  all_reduce_act(tp, grad, n, "copy_to_tp");
}
template <class T>
inline void reduce_from_tp_forward(Communicator& tp, T* x, size_t n) {
  if (tp.size() > 1) tp.all_reduce(x, n, ReduceOp::Sum);
}
template <class T>
inline void reduce_from_tp_forward(Communicator& tp, Act<T> x, size_t n) {
  all_reduce_act(tp, x, n, "reduce_from_tp");
}
template <class T>
inline void reduce_from_tp_backward(Communicator&, T*, size_t) {}
template <class T>
inline void reduce_from_tp_backward(Communicator&, Act<T>, size_t) {}

// X_i (N, C/p) <- columns [i C/p, (i+1) C/p) of X (N, C).
template <class T>
inline void split_last_dim(Communicator& tp, const T* full, T* local, size_t N, size_t C) {
  const size_t Cl = C / tp.size(), c0 = tp.rank() * Cl;
  for (size_t n = 0; n < N; ++n) std::copy(full + n * C + c0, full + n * C + c0 + Cl, local + n * Cl);
}

// X (N, C) <- [X_0 ... X_{p-1}] from every rank's X_i (N, C/p). `scratch` holds p x N x C/p elements.
template <class T>
inline void gather_last_dim(Communicator& tp, const T* local, T* full, T* scratch, size_t N, size_t C) {
  const int p = tp.size();
  const size_t Cl = C / p, chunk = N * Cl;
  std::copy(local, local + chunk, scratch + tp.rank() * chunk);
  if (p > 1) tp.all_gather(scratch, std::vector<size_t>(p, chunk));
  for (int i = 0; i < p; ++i)
    for (size_t n = 0; n < N; ++n) std::copy(scratch + i * chunk + n * Cl, scratch + i * chunk + (n + 1) * Cl, full + n * C + i * Cl);
}

template <class T>
inline void scatter_to_tp_forward(Communicator& tp, const T* full, T* local, size_t N, size_t C) {
  split_last_dim(tp, full, local, N, C);
}
template <class T>
inline void scatter_to_tp_backward(Communicator& tp, const T* dlocal, T* dfull, T* scratch, size_t N, size_t C) {
  gather_last_dim(tp, dlocal, dfull, scratch, N, C);
}
template <class T>
inline void gather_from_tp_forward(Communicator& tp, const T* local, T* full, T* scratch, size_t N, size_t C) {
  gather_last_dim(tp, local, full, scratch, N, C);
}
template <class T>
inline void gather_from_tp_backward(Communicator& tp, const T* dfull, T* dlocal, size_t N, size_t C) {
  split_last_dim(tp, dfull, dlocal, N, C);
}

}  // namespace erlangshen::tp
