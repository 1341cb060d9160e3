// MPI communicators on host buffers (the CPU backend), with timeouts and overlap.
//
// Every collective is started with the non-blocking MPI call (MPI_Iallreduce, MPI_Ireduce_scatter,
// MPI_Iallgatherv, MPI_Ibcast, MPI_Ibarrier) in the caller's thread, in program order (so every rank starts
// the collectives of one communicator in the same order), and then completed by polling MPI_Test against a
// deadline: a collective that has not completed after `timeout_s` aborts the whole job (MPI_Abort) with a
// message naming the world rank, the group, the operation and its byte count, instead of hanging.
//
// Overlap: MPI only moves data while some thread is inside the library, so a communicator that has
// non-blocking collectives in flight runs a progress thread that polls them every few tens of microseconds
// (sleeping in between, so it costs the compute threads little) while the caller computes.
//
// All our MPI calls take the session's mutex, so MPI_THREAD_SERIALIZED is enough.
#pragma once
#include <mpi.h>

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "parallel/communicator.h"

namespace erlangshen {

// MPI for this process: MPI_Init_thread on construction, MPI_Finalize on destruction (after every
// communicator made from it is gone). Owns the mutex that serialises our MPI calls.
class MpiSession {
 public:
  MpiSession(int* argc = nullptr, char*** argv = nullptr);
  ~MpiSession();
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;

  int world_rank() const { return world_rank_; }
  int world_size() const { return world_size_; }
  std::mutex& mutex() { return mutex_; }
  // Prints "erlangshen: rank R: message" to stderr and takes the whole job down (MPI_Abort).
  [[noreturn]] void abort(const std::string& message, int code = 1) const;

  // True when a launcher started this process as one rank of a job (mpirun/mpiexec, srun --mpi=pmix, ...).
  static bool launched_by_mpi();

 private:
  int world_rank_ = 0, world_size_ = 1;
  bool owns_init_ = false;
  std::mutex mutex_;
};

class MpiCommunicator final : public Communicator {
 public:
  // Wraps `comm` (taken over: freed on destruction) as the group called `name` (e.g. "tp", "dp", "world").
  MpiCommunicator(MpiSession& session, MPI_Comm comm, std::string name, double timeout_s);
  ~MpiCommunicator() override;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string name() const override { return name_; }
  void barrier() override;
  CommStats stats() const override;
  MPI_Comm comm() const { return comm_; }
  double timeout_s() const { return timeout_s_; }

 protected:
  void run(const Collective& c) override;
  CommHandle start(const Collective& c) override;

 private:
  struct Pending;
  class Handle;
  std::shared_ptr<Pending> initiate(const Collective& c, bool async);
  void progress();                   // tests every pending collective once; aborts on an expired deadline
  void wait_for(const Pending& p);   // polls until p completes
  void progress_loop();              // body of the progress thread
  [[noreturn]] void timeout(const Pending& p) const;

  MpiSession& session_;
  MPI_Comm comm_;
  std::string name_;
  double timeout_s_;
  int rank_ = 0, size_ = 1;

  mutable std::mutex state_;  // guards everything below (taken before the session's MPI mutex)
  std::vector<std::shared_ptr<Pending>> pending_;
  int async_in_flight_ = 0;
  double busy_since_ = 0;
  CommStats stats_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::thread progress_thread_;
};

}  // namespace erlangshen
