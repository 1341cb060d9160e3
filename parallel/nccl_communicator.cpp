#include "parallel/nccl_communicator.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "parallel/mpi_communicator.h"
#include "runtime/check.h"
#include "runtime/timer.h"

namespace erlangshen {

namespace {

ncclDataType_t nccl_type(DType t) {
  switch (t) {
    case DType::F32: return ncclFloat32;
    case DType::F64: return ncclFloat64;
    case DType::I32: return ncclInt32;
    case DType::I64: return ncclInt64;
    case DType::U8: return ncclUint8;
  }
  return ncclUint8;
}

ncclRedOp_t nccl_op(ReduceOp op) { return op == ReduceOp::Sum ? ncclSum : ncclMax; }

void cuda_check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw Error(std::string("CUDA error in ") + what + ": " + cudaGetErrorString(e));
}

void nccl_check(ncclResult_t r, const char* what) {
  if (r != ncclSuccess) throw Error(std::string("NCCL error in ") + what + ": " + ncclGetErrorString(r));
}

bool all_equal(const std::vector<size_t>& v) {
  for (size_t x : v)
    if (x != v.front()) return false;
  return true;
}

}  // namespace

class NcclCommunicator::Handle final : public CommRequest {
 public:
  Handle(NcclCommunicator& owner, Collective c, cudaEvent_t begin, cudaEvent_t end)
      : owner_(owner), c_(std::move(c)), begin_(begin), end_(end), deadline_(now_seconds() + owner.timeout_s_) {}
  ~Handle() override {
    if (end_ != nullptr) wait();
  }
  void wait() override {
    if (end_ == nullptr) return;
    Stopwatch sw;
    owner_.wait_event(end_, c_, deadline_);
    cuda_check(cudaStreamWaitEvent(owner_.compute_, end_, 0), "cudaStreamWaitEvent");
    float ms = 0;
    cudaEventElapsedTime(&ms, begin_, end_);
    {
      std::lock_guard<std::mutex> lock(owner_.stats_mutex_);
      owner_.stats_.wait_s += sw.seconds();
      owner_.stats_.async_busy_s += ms * 1e-3;
    }
    cudaEventDestroy(begin_);
    cudaEventDestroy(end_);
    end_ = nullptr;
  }

 private:
  NcclCommunicator& owner_;
  Collective c_;
  cudaEvent_t begin_, end_;
  double deadline_;
};

NcclCommunicator::NcclCommunicator(Communicator& bootstrap, std::string name, double timeout_s, MpiSession* session)
    : name_(std::move(name)), timeout_s_(timeout_s), session_(session), rank_(bootstrap.rank()), size_(bootstrap.size()) {
  ncclUniqueId id;
  if (rank_ == 0) nccl_check(ncclGetUniqueId(&id), "ncclGetUniqueId");
  bootstrap.broadcast(reinterpret_cast<uint8_t*>(&id), sizeof id, 0);
  nccl_check(ncclCommInitRank(&comm_, size_, id, rank_), "ncclCommInitRank");
  // At the compute stream's priority (cuda::ContextOptions::high_priority): above the optimizer's side stream.
  int least = 0, greatest = 0;
  cuda_check(cudaDeviceGetStreamPriorityRange(&least, &greatest), "cudaDeviceGetStreamPriorityRange");
  cuda_check(cudaStreamCreateWithPriority(&stream_, cudaStreamNonBlocking, greatest), "cudaStreamCreateWithPriority");
  cuda_check(cudaMalloc(&scratch_, sizeof(float)), "cudaMalloc");
}

NcclCommunicator::~NcclCommunicator() {
  if (comm_ != nullptr) ncclCommDestroy(comm_);
  if (scratch_ != nullptr) cudaFree(scratch_);
  if (stream_ != nullptr) cudaStreamDestroy(stream_);
}

void NcclCommunicator::enqueue(const Collective& c, cudaEvent_t begin) {
  // The collective follows the compute stream's work up to now.
  cudaEvent_t ready;
  cuda_check(cudaEventCreateWithFlags(&ready, cudaEventDisableTiming), "cudaEventCreate");
  cuda_check(cudaEventRecord(ready, compute_), "cudaEventRecord");
  cuda_check(cudaStreamWaitEvent(stream_, ready, 0), "cudaStreamWaitEvent");
  cudaEventDestroy(ready);
  if (begin != nullptr) cuda_check(cudaEventRecord(begin, stream_), "cudaEventRecord");

  const ncclDataType_t type = nccl_type(c.dtype);
  const size_t esize = dtype_bytes(c.dtype);
  char* data = static_cast<char*>(c.data);
  switch (c.kind) {
    case CollectiveKind::AllReduce:
      nccl_check(ncclAllReduce(data, data, c.count, type, nccl_op(c.op), comm_, stream_), "ncclAllReduce");
      break;
    case CollectiveKind::ReduceScatter:
      if (all_equal(c.counts)) {  // in place: recvbuff = sendbuff + rank * recvcount
        const size_t q = c.counts.front();
        nccl_check(ncclReduceScatter(data, data + rank_ * q * esize, q, type, nccl_op(c.op), comm_, stream_),
                   "ncclReduceScatter");
      } else {  // piece r reduced onto rank r
        nccl_check(ncclGroupStart(), "ncclGroupStart");
        for (int r = 0; r < size_; ++r) {
          char* piece = data + piece_offset(c.counts, r) * esize;
          nccl_check(ncclReduce(piece, piece, c.counts[r], type, nccl_op(c.op), r, comm_, stream_), "ncclReduce");
        }
        nccl_check(ncclGroupEnd(), "ncclGroupEnd");
      }
      break;
    case CollectiveKind::AllGather:
      if (all_equal(c.counts)) {  // in place: sendbuff = recvbuff + rank * sendcount
        const size_t q = c.counts.front();
        nccl_check(ncclAllGather(data + rank_ * q * esize, data, q, type, comm_, stream_), "ncclAllGather");
      } else {  // piece r broadcast from rank r
        nccl_check(ncclGroupStart(), "ncclGroupStart");
        for (int r = 0; r < size_; ++r) {
          char* piece = data + piece_offset(c.counts, r) * esize;
          nccl_check(ncclBroadcast(piece, piece, c.counts[r], type, r, comm_, stream_), "ncclBroadcast");
        }
        nccl_check(ncclGroupEnd(), "ncclGroupEnd");
      }
      break;
    case CollectiveKind::Broadcast:
      nccl_check(ncclBroadcast(data, data, c.count, type, c.root, comm_, stream_), "ncclBroadcast");
      break;
    case CollectiveKind::Barrier:
      nccl_check(ncclAllReduce(scratch_, scratch_, 1, ncclFloat32, ncclSum, comm_, stream_), "ncclAllReduce");
      break;
  }
  std::lock_guard<std::mutex> lock(stats_mutex_);
  stats_.bytes += c.bytes();
}

void NcclCommunicator::wait_event(cudaEvent_t done, const Collective& c, double deadline) {
  for (;;) {
    const cudaError_t q = cudaEventQuery(done);
    if (q == cudaSuccess) return;
    if (q != cudaErrorNotReady) fail(c, std::string("CUDA error ") + cudaGetErrorString(q));
    ncclResult_t async = ncclSuccess;
    ncclCommGetAsyncError(comm_, &async);
    if (async != ncclSuccess && async != ncclInProgress) fail(c, std::string("NCCL error ") + ncclGetErrorString(async));
    if (now_seconds() > deadline) {
      char t[32];
      std::snprintf(t, sizeof t, "%g", timeout_s_);
      fail(c, std::string("did not complete within ") + t + " s (parallel.timeout_s): a rank died or hangs");
    }
    std::this_thread::sleep_for(std::chrono::microseconds(20));
  }
}

void NcclCommunicator::fail(const Collective& c, const std::string& why) {
  const std::string msg = "group '" + name_ + "' (NCCL rank " + std::to_string(rank_) + "/" + std::to_string(size_) +
                          "): " + c.describe() + " " + why + "; aborting the job";
  ncclCommAbort(comm_);
  comm_ = nullptr;
  if (session_ != nullptr) session_->abort(msg);
  std::fprintf(stderr, "erlangshen: %s\n", msg.c_str());
  std::fflush(stderr);
  std::_Exit(1);
}

void NcclCommunicator::run(const Collective& c) {
  check(c);
  Stopwatch sw;
  const double deadline = now_seconds() + timeout_s_;
  enqueue(c);
  cudaEvent_t done;
  cuda_check(cudaEventCreateWithFlags(&done, cudaEventDisableTiming), "cudaEventCreate");
  cuda_check(cudaEventRecord(done, stream_), "cudaEventRecord");
  wait_event(done, c, deadline);
  cudaEventDestroy(done);
  std::lock_guard<std::mutex> lock(stats_mutex_);
  stats_.blocking_s += sw.seconds();
}

CommHandle NcclCommunicator::start(const Collective& c) {
  check(c);
  cudaEvent_t begin, end;
  cuda_check(cudaEventCreate(&begin), "cudaEventCreate");
  cuda_check(cudaEventCreate(&end), "cudaEventCreate");
  enqueue(c, begin);
  cuda_check(cudaEventRecord(end, stream_), "cudaEventRecord");
  return std::make_unique<Handle>(*this, c, begin, end);
}

void NcclCommunicator::barrier() {
  Collective c;
  c.kind = CollectiveKind::Barrier;
  run(c);
}

CommStats NcclCommunicator::stats() const {
  std::lock_guard<std::mutex> lock(stats_mutex_);
  return stats_;
}

NcclGroups make_nccl_groups(const ProcessGroups& g, double timeout_s, MpiSession* session) {
  NcclGroups n;
  n.tp = std::make_unique<NcclCommunicator>(*g.tp_group, "tp", timeout_s, session);
  n.dp = std::make_unique<NcclCommunicator>(*g.dp_group, "dp", timeout_s, session);
  return n;
}

}  // namespace erlangshen
