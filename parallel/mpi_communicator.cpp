#include "parallel/mpi_communicator.h"

#include <atomic>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "runtime/check.h"
#include "runtime/timer.h"

namespace erlangshen {

// ---------------------------------------------------------------------------------------------------------
// MpiSession

MpiSession::MpiSession(int* argc, char*** argv) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    int provided = MPI_THREAD_SINGLE;
    MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided);
    owns_init_ = true;
    if (provided < MPI_THREAD_SERIALIZED) {
      MPI_Finalize();
      throw Error("MPI provides thread level " + std::to_string(provided) +
                  " but the runtime needs MPI_THREAD_SERIALIZED (progress threads)");
    }
  }
  MPI_Comm_rank(MPI_COMM_WORLD, &world_rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &world_size_);
  // Errors in MPI calls come back as codes (we check them) instead of killing the job without a word.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
}

MpiSession::~MpiSession() {
  if (owns_init_) {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Finalize();
  }
}

void MpiSession::abort(const std::string& message, int code) const {
  std::fprintf(stderr, "erlangshen: rank %d: %s\n", world_rank_, message.c_str());
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);  // MPI_Abort does not return; this is for the compiler
}

bool MpiSession::launched_by_mpi() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE", "MPI_LOCALNRANKS",
                        "MV2_COMM_WORLD_SIZE"})
    if (std::getenv(v) != nullptr) return true;
  return false;
}

// ---------------------------------------------------------------------------------------------------------
// MpiCommunicator

namespace {

MPI_Datatype mpi_type(DType t) {
  switch (t) {
    case DType::F32: return MPI_FLOAT;
    case DType::F64: return MPI_DOUBLE;
    case DType::I32: return MPI_INT32_T;
    case DType::I64: return MPI_INT64_T;
    case DType::U8: return MPI_UINT8_T;
  }
  return MPI_BYTE;
}

MPI_Op mpi_op(ReduceOp op) { return op == ReduceOp::Sum ? MPI_SUM : MPI_MAX; }

int to_int(size_t n, const Collective& c) {
  ERL_CHECK(n <= static_cast<size_t>(INT_MAX), c.describe() << ": more than INT_MAX elements (split the buffer)");
  return static_cast<int>(n);
}

// Polling back-off of a waiting caller: spin for the first couple of milliseconds (latency of small
// collectives), then sleep between polls (so oversubscribed ranks leave the cores to those computing).
constexpr double kSpinSeconds = 2e-3;
constexpr auto kPollSleep = std::chrono::microseconds(50);

}  // namespace

struct MpiCommunicator::Pending {
  Collective c;
  MPI_Request request = MPI_REQUEST_NULL;
  std::vector<char> scratch;             // reduce_scatter: this rank's reduced piece before it is moved into place
  std::vector<int> counts, displs;       // reduce_scatter / all_gather pieces as MPI wants them
  double deadline = 0;
  bool async = false;
  std::atomic<bool> done{false};
};

class MpiCommunicator::Handle final : public CommRequest {
 public:
  Handle(MpiCommunicator& owner, std::shared_ptr<Pending> p) : owner_(owner), p_(std::move(p)) {}
  ~Handle() override {
    if (p_) wait();
  }
  void wait() override {
    if (!p_) return;
    Stopwatch sw;
    owner_.wait_for(*p_);
    std::lock_guard<std::mutex> lock(owner_.state_);
    owner_.stats_.wait_s += sw.seconds();
    p_.reset();
  }

 private:
  MpiCommunicator& owner_;
  std::shared_ptr<Pending> p_;
};

MpiCommunicator::MpiCommunicator(MpiSession& session, MPI_Comm comm, std::string name, double timeout_s)
    : session_(session), comm_(comm), name_(std::move(name)), timeout_s_(timeout_s) {
  MPI_Comm_rank(comm_, &rank_);
  MPI_Comm_size(comm_, &size_);
  MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
}

MpiCommunicator::~MpiCommunicator() {
  {
    std::lock_guard<std::mutex> lock(state_);
    stop_ = true;
  }
  wake_.notify_all();
  if (progress_thread_.joinable()) progress_thread_.join();
  std::lock_guard<std::mutex> mpi(session_.mutex());
  if (comm_ != MPI_COMM_NULL && comm_ != MPI_COMM_WORLD) MPI_Comm_free(&comm_);
}

std::shared_ptr<MpiCommunicator::Pending> MpiCommunicator::initiate(const Collective& c, bool async) {
  auto p = std::make_shared<Pending>();
  p->c = c;
  p->async = async;
  p->deadline = now_seconds() + timeout_s_;
  const MPI_Datatype type = mpi_type(c.dtype);
  const size_t esize = dtype_bytes(c.dtype);
  if (!c.counts.empty()) {
    for (size_t k : c.counts) p->counts.push_back(to_int(k, c));
    for (int r = 0; r < size_; ++r) p->displs.push_back(to_int(piece_offset(c.counts, r), c));
  }
  std::lock_guard<std::mutex> lock(state_);
  std::lock_guard<std::mutex> mpi(session_.mutex());
  int err = MPI_SUCCESS;
  switch (c.kind) {
    case CollectiveKind::AllReduce:
      err = MPI_Iallreduce(MPI_IN_PLACE, c.data, to_int(c.count, c), type, mpi_op(c.op), comm_, &p->request);
      break;
    case CollectiveKind::ReduceScatter:
      // Out of place into scratch (MPI_IN_PLACE would leave the piece at the buffer's start); moved into
      // place on completion.
      p->scratch.resize(std::max<size_t>(1, c.counts[rank_] * esize));
      err = MPI_Ireduce_scatter(c.data, p->scratch.data(), p->counts.data(), type, mpi_op(c.op), comm_, &p->request);
      break;
    case CollectiveKind::AllGather:
      err = MPI_Iallgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, c.data, p->counts.data(), p->displs.data(), type,
                            comm_, &p->request);
      break;
    case CollectiveKind::Broadcast:
      err = MPI_Ibcast(c.data, to_int(c.count, c), type, c.root, comm_, &p->request);
      break;
    case CollectiveKind::Barrier:
      err = MPI_Ibarrier(comm_, &p->request);
      break;
  }
  if (err != MPI_SUCCESS) {
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(err, msg, &len);
    session_.abort("group '" + name_ + "' (rank " + std::to_string(rank_) + "/" + std::to_string(size_) +
                   "): starting " + c.describe() + " failed: " + std::string(msg, len));
  }
  stats_.bytes += c.bytes();
  if (async) {
    if (async_in_flight_++ == 0) busy_since_ = now_seconds();
  }
  pending_.push_back(p);
  return p;
}

void MpiCommunicator::progress() {
  std::lock_guard<std::mutex> lock(state_);
  if (pending_.empty()) return;
  const double now = now_seconds();
  std::lock_guard<std::mutex> mpi(session_.mutex());
  for (size_t i = 0; i < pending_.size();) {
    Pending& p = *pending_[i];
    int flag = 0;
    const int err = MPI_Test(&p.request, &flag, MPI_STATUS_IGNORE);
    if (err != MPI_SUCCESS)
      session_.abort("group '" + name_ + "': " + p.c.describe() + " failed (MPI error " + std::to_string(err) + ")");
    if (!flag) {
      if (now > p.deadline) timeout(p);
      ++i;
      continue;
    }
    if (p.c.kind == CollectiveKind::ReduceScatter) {
      const size_t esize = dtype_bytes(p.c.dtype);
      std::memcpy(static_cast<char*>(p.c.data) + piece_offset(p.c.counts, rank_) * esize, p.scratch.data(),
                  p.c.counts[rank_] * esize);
    }
    if (p.async && --async_in_flight_ == 0) stats_.async_busy_s += now_seconds() - busy_since_;
    p.done.store(true, std::memory_order_release);
    pending_.erase(pending_.begin() + static_cast<std::ptrdiff_t>(i));
  }
}

void MpiCommunicator::wait_for(const Pending& p) {
  Stopwatch sw;
  while (!p.done.load(std::memory_order_acquire)) {
    progress();
    if (p.done.load(std::memory_order_acquire)) break;
    if (sw.seconds() > kSpinSeconds) std::this_thread::sleep_for(kPollSleep);
    else std::this_thread::yield();
  }
}

void MpiCommunicator::progress_loop() {
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(state_);
      wake_.wait(lock, [&] { return stop_ || async_in_flight_ > 0; });
      if (stop_) return;
    }
    progress();
    std::this_thread::sleep_for(kPollSleep);
  }
}

void MpiCommunicator::timeout(const Pending& p) const {
  char t[32];
  std::snprintf(t, sizeof t, "%g", timeout_s_);
  session_.abort("group '" + name_ + "' (rank " + std::to_string(rank_) + "/" + std::to_string(size_) + "): " +
                 p.c.describe() + " did not complete within " + t +
                 " s (parallel.timeout_s): a rank died or hangs; aborting the job");
}

void MpiCommunicator::run(const Collective& c) {
  check(c);
  Stopwatch sw;
  std::shared_ptr<Pending> p = initiate(c, false);
  wait_for(*p);
  std::lock_guard<std::mutex> lock(state_);
  stats_.blocking_s += sw.seconds();
}

CommHandle MpiCommunicator::start(const Collective& c) {
  check(c);
  if (!progress_thread_.joinable()) progress_thread_ = std::thread([this] { progress_loop(); });
  std::shared_ptr<Pending> p = initiate(c, true);
  wake_.notify_one();
  return std::make_unique<Handle>(*this, std::move(p));
}

void MpiCommunicator::barrier() {
  Collective c;
  c.kind = CollectiveKind::Barrier;
  run(c);
}

CommStats MpiCommunicator::stats() const {
  std::lock_guard<std::mutex> lock(state_);
  CommStats s = stats_;
  if (async_in_flight_ > 0) s.async_busy_s += now_seconds() - busy_since_;
  return s;
}

}  // namespace erlangshen
