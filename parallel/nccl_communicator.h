// NCCL communicator for the CUDA backend: the same collectives as communicator.h on *device* buffers.
//
// Ordering: a collective is enqueued on this communicator's own stream after an event recorded on the compute
// stream (set_compute_stream), so it sees everything the compute kernels wrote before the call; a
// non-blocking collective then overlaps with the compute kernels enqueued after it, and handle->wait()
// returns once it is complete (the compute stream is also made to wait for it).
//
// Timeout: completion is polled on the host (cudaEventQuery + ncclCommGetAsyncError) against
// parallel.timeout_s; a collective that misses it aborts the NCCL communicator (ncclCommAbort) and the job
// (MPI_Abort) with a message naming the rank, the operation and its byte count.
//
// Uneven pieces (reduce_scatter / all_gather with counts that are not all equal) run as a group of
// ncclReduce / ncclBroadcast calls, one per piece; equal pieces use ncclReduceScatter / ncclAllGather in place.
#pragma once
#include <cuda_runtime.h>
#include <nccl.h>

#include <memory>
#include <mutex>
#include <string>

#include "parallel/communicator.h"
#include "parallel/process_group.h"

namespace erlangshen {

class MpiSession;

class NcclCommunicator final : public Communicator {
 public:
  // The ranks of `bootstrap` (a host communicator, e.g. an MpiCommunicator or, for one rank, a
  // SelfCommunicator): its rank 0 creates the NCCL unique id and broadcasts it. The caller has already
  // selected this rank's GPU (cudaSetDevice(local_rank)). `session` (may be null for one process) is used to
  // take the whole job down on a timeout.
  NcclCommunicator(Communicator& bootstrap, std::string name, double timeout_s, MpiSession* session = nullptr);
  ~NcclCommunicator() override;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string name() const override { return name_; }
  void barrier() override;
  CommStats stats() const override;

  // Stream whose work the collectives follow and which waits for them (default: the legacy default stream).
  void set_compute_stream(cudaStream_t s) { compute_ = s; }
  cudaStream_t stream() const { return stream_; }

 protected:
  void run(const Collective& c) override;
  CommHandle start(const Collective& c) override;

 private:
  class Handle;
  // Enqueues `c` on stream_ after the compute stream's work so far; records `begin` when it can start.
  void enqueue(const Collective& c, cudaEvent_t begin = nullptr);
  // Polls `done` until it completes; aborts the job at the deadline or on an asynchronous NCCL error.
  void wait_event(cudaEvent_t done, const Collective& c, double deadline);
  [[noreturn]] void fail(const Collective& c, const std::string& why);

  std::string name_;
  double timeout_s_;
  MpiSession* session_;
  int rank_ = 0, size_ = 1;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  cudaStream_t compute_ = nullptr;
  float* scratch_ = nullptr;  // one device float for barrier()
  mutable std::mutex stats_mutex_;
  CommStats stats_;
};

// Device-buffer groups over the same ranks as the host (MPI) groups of `g`, bootstrapped over them. The GPU
// (local rank) must be selected first. Host scalars (loss sums, counts, norms, stop flags) stay on the MPI
// groups; gradients and activations go through these. No world communicator: nothing device-resident crosses the
// whole world (each NCCL communicator costs setup time and device buffers on every rank).
struct NcclGroups {
  std::unique_ptr<NcclCommunicator> tp, dp;
};
NcclGroups make_nccl_groups(const ProcessGroups& g, double timeout_s, MpiSession* session);

}  // namespace erlangshen
