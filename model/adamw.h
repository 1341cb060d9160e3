// AdamW over the flat parameter buffer, walking the parameter table so biases and LayerNorm parameters get
// no weight decay. It updates the element range [begin, end) of the buffer: the whole buffer on one rank,
// or this DP rank's ZeRO-1 shard. The moments live where the Exec given at construction runs (device memory
// on CUDA); checkpoints read and write them through download_state() / upload_state().
#pragma once
#include <cstdint>
#include <vector>

#include "runtime/config.h"
#include "runtime/device_buffer.h"
#include "runtime/ops.h"
#include "runtime/param_table.h"

namespace erlangshen {

template <class T>
class AdamW {
 public:
  AdamW(const ParamTable& table, const TrainConfig& config, size_t begin, size_t end, const Exec& exec = {});
  AdamW(const ParamTable& table, const TrainConfig& config, const Exec& exec = {})
      : AdamW(table, config, 0, table.total(), exec) {}

  // One update of params[begin, end) from grads[begin, end) (same flat indexing), g = grad * grad_scale, in one
  // launch on CUDA. compute_copy (float weights; may be null): the bf16 GEMM copy of the weights, same flat
  // indexing, whose [begin, end) elements of the parameter tensors are rewritten from the updated values in the
  // same pass (the bits MegatronBert's refresh would write).
  void step(const Exec& exec, T* params, const T* grads, double lr, double grad_scale, bf16* compute_copy = nullptr);
  // The same step in pieces, for an update that overlaps other work range by range (model/trainer.cpp):
  // begin_step() once, then update_range() over flat ranges that together cover [begin, end) once, in any order and
  // on any stream. The same bits as step(): the update is elementwise (spans cut at a range's bounds).
  void begin_step() { ++step_count_; }
  void update_range(const Exec& exec, T* params, const T* grads, double lr, double grad_scale, bf16* compute_copy,
                    size_t range_begin, size_t range_end);

  int64_t step_count() const { return step_count_; }
  void set_step_count(int64_t n) { step_count_ = n; }
  size_t begin() const { return begin_; }
  size_t end() const { return end_; }
  // (end - begin) elements each, in the Exec's memory (host memory on the CPU).
  Buffer<T>& exp_avg() { return m_; }
  Buffer<T>& exp_avg_sq() { return v_; }
  // Host copies of the moments, (end - begin) elements each: plain copies on the CPU, device <-> host on CUDA.
  void download_state(T* m, T* v) const {
    m_.copy_to_host(m, 0, m_.size());
    v_.copy_to_host(v, 0, v_.size());
  }
  void upload_state(const T* m, const T* v) {
    m_.copy_from_host(m, 0, m_.size());
    v_.copy_from_host(v, 0, v_.size());
  }

 private:
  std::vector<FlatSpan> spans_;  // the parameter tensors' parts in [begin_, end_), offsets relative to begin_
  TrainConfig config_;
  size_t begin_, end_;
  int64_t step_count_ = 0;
  Buffer<T> m_, v_;
};

// Sum of squared gradients that this rank contributes to the global norm: sharded tensors always, replicated
// tensors only on TP rank 0 (so an all-reduce over TP counts each once). Restricted to [begin, end).
template <class T>
double grad_sq_sum_local(const Exec& exec, const ParamTable& table, const T* grads, size_t begin, size_t end);

// grad_sq_sum_local over [0, table.total()) summed segment by segment as a backward makes the gradients final (the
// model's grad-ready segments, whole tensors each), on whatever stream the caller gives: add() enqueues the sums of
// the tensors in [b, e) into a buffer where the ops run, total() reads them (one synchronisation of that stream)
// and adds them in table order: the same bits as grad_sq_sum_local, without its read of every gradient after the
// backward (the trainer's overlapped update runs this on its side stream during the last backward).
template <class T>
class GradSqSumBySegment {
 public:
  GradSqSumBySegment(const ParamTable& table, const Exec& exec);
  void begin();  // a new step: no segment added yet
  void add(const Exec& exec, const T* grads, size_t b, size_t e);
  double total(const Exec& exec);  // every tensor's segment must have been added

 private:
  std::vector<FlatSpan> spans_;    // grad_sq_sum_local's, in table order (absolute offsets)
  Buffer<double> sums_;            // one per span, where the ops run
  std::vector<double> host_sums_;
  size_t added_ = 0;               // spans added this step
};

}  // namespace erlangshen
