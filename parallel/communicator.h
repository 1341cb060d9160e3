// Communicators: collectives over one process group, behind one interface (MPI on host buffers for the CPU
// backend, parallel/mpi_communicator.h; NCCL on device buffers and a stream for CUDA,
// parallel/nccl_communicator.h). Groups are passed explicitly to the code that uses them; nothing here is
// global.
//
// Semantics, for a group of p ranks where rank r holds buffer x_r (all collectives are in place):
//   all_reduce(x, n, op)        x_r <- op_{s=0..p-1} x_s                         (every rank, n elements)
//   reduce_scatter(x, counts)   x_r[piece r] <- sum_s x_s[piece r]; the rest of x_r is left unspecified
//   all_gather(x, counts)       x_r[piece s] <- x_s[piece s] for every s          (x_r whole afterwards)
//   broadcast(x, n, root)       x_r <- x_root
// where piece s of an n-element buffer is [offset_s, offset_s + counts[s]), offset_s = counts[0] + ... +
// counts[s-1], sum(counts) = n. balanced_counts(n, p) gives the usual near-equal split (Megatron's
// distributed-optimizer shards); uneven pieces (odd sizes, empty pieces) are allowed.
//
// Non-blocking forms (`*_async`) return a handle; the buffer must not be touched until handle->wait().
// Collectives on one communicator must be started in the same order on every rank (as in MPI).
//
// Every implementation honours a timeout: a collective that does not complete within it aborts the whole job
// with a message naming the rank, the operation and its byte count (never a silent hang).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace erlangshen {

enum class ReduceOp { Sum, Max };
enum class DType { F32, F64, I32, I64, U8 };

template <class T> struct dtype_of;
template <> struct dtype_of<float> { static constexpr DType value = DType::F32; };
template <> struct dtype_of<double> { static constexpr DType value = DType::F64; };
template <> struct dtype_of<int32_t> { static constexpr DType value = DType::I32; };
template <> struct dtype_of<int64_t> { static constexpr DType value = DType::I64; };
template <> struct dtype_of<uint8_t> { static constexpr DType value = DType::U8; };

size_t dtype_bytes(DType t);
const char* dtype_name(DType t);
const char* reduce_op_name(ReduceOp op);

// counts[r] = n / p, plus one for the first n % p ranks.
std::vector<size_t> balanced_counts(size_t n, int p);
// offset of piece r: counts[0] + ... + counts[r-1].
size_t piece_offset(const std::vector<size_t>& counts, int r);

enum class CollectiveKind { AllReduce, ReduceScatter, AllGather, Broadcast, Barrier };

// One collective call, as the backends receive it (and as error messages describe it).
struct Collective {
  CollectiveKind kind = CollectiveKind::Barrier;
  void* data = nullptr;          // host (MPI) or device (NCCL) pointer
  size_t count = 0;              // elements of the whole buffer
  DType dtype = DType::F32;
  ReduceOp op = ReduceOp::Sum;   // AllReduce, ReduceScatter
  int root = 0;                  // Broadcast
  std::vector<size_t> counts;    // ReduceScatter, AllGather: elements of each rank's piece (sum = count)

  size_t bytes() const { return count * dtype_bytes(dtype); }
  // e.g. "all_reduce(sum) of 3145728 bytes (786432 x float32)"
  std::string describe() const;
};

// Time accounting of one communicator (seconds since construction), for the progress line:
//   exposed = blocking + waiting (the caller could not compute), hidden = async in flight minus waiting.
struct CommStats {
  double blocking_s = 0;    // inside blocking collectives
  double wait_s = 0;        // inside handle->wait() of non-blocking ones
  double async_busy_s = 0;  // wall time during which at least one non-blocking collective was in flight
  uint64_t bytes = 0;       // payload bytes of all collectives started
  double exposed() const { return blocking_s + wait_s; }
  double hidden() const { return async_busy_s > wait_s ? async_busy_s - wait_s : 0.0; }
  double total() const { return blocking_s + async_busy_s; }
};

// A non-blocking collective in flight.
class CommRequest {
 public:
  virtual ~CommRequest() = default;
  // Blocks until the collective is complete (or aborts the job at the timeout).
  virtual void wait() = 0;
};
using CommHandle = std::unique_ptr<CommRequest>;

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string name() const = 0;  // e.g. "tp", "dp", "world" (for error messages)
  virtual void barrier() = 0;
  virtual CommStats stats() const { return {}; }
  // Seconds the caller spent blocked in collectives since construction (exposed communication).
  double comm_seconds() const { return stats().exposed(); }

  template <class T>
  void all_reduce(T* data, size_t count, ReduceOp op) {
    run(make(CollectiveKind::AllReduce, data, count, op));
  }
  template <class T>
  void reduce_scatter(T* data, std::vector<size_t> counts, ReduceOp op = ReduceOp::Sum) {
    run(make_pieces(CollectiveKind::ReduceScatter, data, std::move(counts), op));
  }
  template <class T>
  void all_gather(T* data, std::vector<size_t> counts) {
    run(make_pieces(CollectiveKind::AllGather, data, std::move(counts), ReduceOp::Sum));
  }
  template <class T>
  void broadcast(T* data, size_t count, int root) {
    Collective c = make(CollectiveKind::Broadcast, data, count, ReduceOp::Sum);
    c.root = root;
    run(c);
  }

  template <class T>
  CommHandle all_reduce_async(T* data, size_t count, ReduceOp op) {
    return start(make(CollectiveKind::AllReduce, data, count, op));
  }
  template <class T>
  CommHandle reduce_scatter_async(T* data, std::vector<size_t> counts, ReduceOp op = ReduceOp::Sum) {
    return start(make_pieces(CollectiveKind::ReduceScatter, data, std::move(counts), op));
  }
  template <class T>
  CommHandle all_gather_async(T* data, std::vector<size_t> counts) {
    return start(make_pieces(CollectiveKind::AllGather, data, std::move(counts), ReduceOp::Sum));
  }

 protected:
  // Backends implement these two. `start` may run the collective to completion and return a finished handle.
  virtual void run(const Collective& c) = 0;
  virtual CommHandle start(const Collective& c);
  // Throws if `c` is malformed for this group (pieces count != size, sum != count, root out of range).
  void check(const Collective& c) const;

 private:
  template <class T>
  static Collective make(CollectiveKind kind, T* data, size_t count, ReduceOp op) {
    Collective c;
    c.kind = kind;
    c.data = data;
    c.count = count;
    c.dtype = dtype_of<T>::value;
    c.op = op;
    return c;
  }
  template <class T>
  static Collective make_pieces(CollectiveKind kind, T* data, std::vector<size_t> counts, ReduceOp op) {
    size_t n = 0;
    for (size_t k : counts) n += k;
    Collective c = make(kind, data, n, op);
    c.counts = std::move(counts);
    return c;
  }
};

// A group of one process: every collective is the identity.
class SelfCommunicator final : public Communicator {
 public:
  explicit SelfCommunicator(std::string name = "self") : name_(std::move(name)) {}
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string name() const override { return name_; }
  void barrier() override {}

 protected:
  void run(const Collective& c) override { check(c); }

 private:
  std::string name_;
};

}  // namespace erlangshen
