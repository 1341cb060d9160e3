// Runs a kernel's grid on the host (see cuda_emulation.h): blocks in order; a block's threads as fibers
// (fiber.h) on the calling thread, each running until it finishes or reaches __syncthreads or a warp collective.
// When every unfinished thread of the block is blocked, the scheduler completes the warp collectives whose warps
// have all arrived, or else releases the barrier when the whole block has arrived; otherwise the kernel is stuck
// (divergent barrier or collective) and the launch throws, naming the kernel and the block.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "tests/cuda_emulation/cuda_emulation.h"
#include "tests/cuda_emulation/fiber.h"

namespace erl_emu {
namespace {

constexpr size_t kStackBytes = 256 * 1024;
constexpr size_t kMaxDynamicShared = 232448;  // an H100 block's opt-in maximum (227 KiB)  // kernels keep small
                                              // per-thread arrays; generous for the lambdas around

enum class State { Runnable, AtBarrier, AtWarp, Finished };

struct Fiber {
  FiberContext context;
  std::unique_ptr<char[]> stack;
  State state = State::Runnable;
  ThreadCoords coords;
  // A pending warp collective.
  WarpOp op = WarpOp::Shfl;
  unsigned mask = 0;
  uint64_t value = 0;
  int arg = 0;
  int width = 32;
  uint64_t result = 0;
  // A pending gather: this lane's bytes, and where every lane's go.
  unsigned char gather_in[kGatherBytes];
  size_t gather_bytes = 0;
  void* gather_out = nullptr;
  // cp.async copies queued and not yet waited for.
  struct Copy {
    void* dst;
    const void* src;
    size_t bytes;
  };
  std::vector<Copy> async_copies;
};

// The block being run (one at a time, on the launching thread).
struct BlockRun {
  FiberContext scheduler;
  Fiber* fibers = nullptr;  // the block's threads: fibers[0, n)
  size_t n = 0;
  Fiber* current = nullptr;
  const std::function<void()>* body = nullptr;
  unsigned char* shared = nullptr;  // dynamic shared memory of the launch
  std::exception_ptr error;
};

// The emulation's own state: which block runs on this host thread (null outside a launch), and the fiber stacks
// kept between launches.
thread_local BlockRun* g_block = nullptr;
thread_local std::vector<Fiber>* g_fiber_pool = nullptr;  // allocated once per host thread, never freed

BlockRun& block_run(const char* what) {
  if (g_block == nullptr || g_block->current == nullptr)
    throw std::logic_error(std::string("CUDA emulation: ") + what + " called outside a kernel");
  return *g_block;
}

void suspend(BlockRun& run, State state) {
  Fiber* f = run.current;
  f->state = state;
  fiber_switch(&f->context, &run.scheduler);
}

// A thread's whole life: the kernel body, then back to the scheduler for good (the fiber is prepared afresh
// before it runs another thread).
void fiber_main(void* arg) {
  auto* run = static_cast<BlockRun*>(arg);
  try {
    (*run->body)();
  } catch (...) {
    if (!run->error) run->error = std::current_exception();
  }
  Fiber* self = run->current;
  self->state = State::Finished;
  fiber_switch(&self->context, &run->scheduler);
}

std::string describe(const char* kernel, const ThreadCoords& c) {
  std::ostringstream os;
  os << kernel << " block (" << c.block_idx.x << "," << c.block_idx.y << "," << c.block_idx.z << ")";
  return os.str();
}

// Completes the collective of one warp whose unfinished lanes have all arrived. Returns false when not all have.
bool complete_warp(Fiber* f, size_t first, size_t end, const char* kernel) {
  size_t arrived = 0, finished = 0;
  for (size_t i = first; i < end; ++i) {
    arrived += f[i].state == State::AtWarp;
    finished += f[i].state == State::Finished;
  }
  if (arrived == 0 || arrived + finished != end - first) return false;
  const Fiber& lead = f[first + (f[first].state == State::AtWarp ? 0 : 1)];
  if (arrived != 32 || end - first != 32)
    throw std::runtime_error("CUDA emulation: " + describe(kernel, lead.coords) + ": a warp collective reached by " +
                             std::to_string(arrived) + " lanes (the backend's collectives need full warps of 32)");
  for (size_t i = first; i < end; ++i) {
    if (f[i].op != f[first].op || f[i].mask != 0xffffffffu || f[i].width != f[first].width ||
        (f[i].op != WarpOp::Ballot && f[i].width != 32) ||
        (f[i].op == WarpOp::Gather && f[i].gather_bytes != f[first].gather_bytes))
      throw std::runtime_error("CUDA emulation: " + describe(kernel, lead.coords) +
                               ": lanes of one warp disagree on a collective, or use a partial mask or width");
  }
  if (f[first].op == WarpOp::Gather) {
    const size_t bytes = f[first].gather_bytes;
    for (size_t i = first; i < end; ++i)
      for (size_t j = first; j < end; ++j)
        std::memcpy(static_cast<unsigned char*>(f[i].gather_out) + (j - first) * bytes, f[j].gather_in, bytes);
    for (size_t i = first; i < end; ++i) f[i].state = State::Runnable;
    return true;
  }
  uint64_t ballot = 0;
  for (size_t i = first; i < end; ++i)
    if (f[i].value != 0) ballot |= uint64_t(1) << (i - first);
  for (size_t i = first; i < end; ++i) {
    const int lane = static_cast<int>(i - first);
    int src = lane;
    switch (f[i].op) {
      case WarpOp::ShflXor:
        src = lane ^ f[i].arg;
        break;
      case WarpOp::Shfl:
        src = f[i].arg & 31;
        break;
      case WarpOp::ShflDown:
        src = lane + f[i].arg < 32 ? lane + f[i].arg : lane;
        break;
      case WarpOp::ShflUp:
        src = lane - f[i].arg >= 0 ? lane - f[i].arg : lane;
        break;
      case WarpOp::Ballot:
      case WarpOp::Gather:
        break;
    }
    if (src < 0 || src > 31) src = lane;
    f[i].result = f[i].op == WarpOp::Ballot ? ballot : f[first + static_cast<size_t>(src)].value;
  }
  for (size_t i = first; i < end; ++i)
    if (f[i].state == State::AtWarp) f[i].state = State::Runnable;
  return true;
}

// Scheduling between barriers: one warp at a time, as far as it can go (its collectives complete as soon as its
// own lanes have all arrived), so a warp runs ahead of the others until it reaches __syncthreads. Warps in order,
// or with ERL_EMU_REVERSE=1 the last warp (and within a warp the last lane) first. A kernel whose result depends
// on the order (a missing __syncthreads: a warp reads shared memory before another wrote it, or overwrites it
// before another read it) gives a different answer in one of the two orders, which the tests catch when they run
// both ways (scripts/test.sh does).
bool reverse_order() {
  const char* env = std::getenv("ERL_EMU_REVERSE");
  return env != nullptr && env[0] == '1';
}

void run_block(BlockRun& run, const char* kernel) {
  Fiber* f = run.fibers;
  const size_t n = run.n;
  const bool reverse = reverse_order();
  const size_t warps = (n + 31) / 32;
  for (;;) {
    for (size_t wk = 0; wk < warps; ++wk) {
      const size_t w = reverse ? warps - 1 - wk : wk, first = 32 * w, end = std::min(n, first + 32);
      do {
        for (size_t k = first; k < end; ++k) {
          const size_t i = reverse ? end - 1 - (k - first) : k;
          if (f[i].state != State::Runnable) continue;
          run.current = &f[i];
          fiber_switch(&run.scheduler, &f[i].context);
          run.current = nullptr;
          if (run.error) std::rethrow_exception(run.error);
        }
      } while (complete_warp(f, first, end, kernel));
    }
    size_t at_barrier = 0, unfinished = 0;
    for (size_t i = 0; i < n; ++i) {
      unfinished += f[i].state != State::Finished;
      at_barrier += f[i].state == State::AtBarrier;
    }
    if (unfinished == 0) return;
    if (at_barrier == unfinished) {
      for (size_t i = 0; i < n; ++i)
        if (f[i].state == State::AtBarrier) f[i].state = State::Runnable;
      continue;
    }
    size_t stuck = 0;
    while (f[stuck].state == State::Finished) ++stuck;
    throw std::runtime_error("CUDA emulation: " + describe(kernel, f[stuck].coords) +
                             " cannot proceed: " + std::to_string(at_barrier) + " of " + std::to_string(unfinished) +
                             " unfinished threads wait at __syncthreads, the rest at warp collectives their warp "
                             "does not complete");
  }
}

}  // namespace

const ThreadCoords& coords() { return block_run("threadIdx/blockIdx").current->coords; }

unsigned char* dynamic_shared() {
  BlockRun& run = block_run("dynamic shared memory");
  if (run.shared == nullptr)
    throw std::logic_error("CUDA emulation: dynamic shared memory used by a launch without it");
  return run.shared;
}

void syncthreads() {
  BlockRun& run = block_run("__syncthreads");
  suspend(run, State::AtBarrier);
}

uint64_t warp_collective(WarpOp op, unsigned mask, uint64_t value, int arg, int width) {
  BlockRun& run = block_run("a warp collective");
  Fiber* f = run.current;
  f->op = op, f->mask = mask, f->value = value, f->arg = arg, f->width = width;
  suspend(run, State::AtWarp);
  return f->result;
}

void warp_gather(const void* mine, size_t bytes, void* all) {
  BlockRun& run = block_run("a warp gather");
  if (bytes == 0 || bytes > kGatherBytes)
    throw std::logic_error("CUDA emulation: a warp gather of " + std::to_string(bytes) + " bytes per lane");
  Fiber* f = run.current;
  std::memcpy(f->gather_in, mine, bytes);
  f->gather_bytes = bytes, f->gather_out = all;
  f->op = WarpOp::Gather, f->mask = 0xffffffffu, f->value = 0, f->arg = 0, f->width = 32;
  suspend(run, State::AtWarp);
}

void cp_async_queue(void* dst, const void* src, size_t bytes) {
  block_run("cp.async").current->async_copies.push_back(Fiber::Copy{dst, src, bytes});
}

void cp_async_wait_all() {
  Fiber* f = block_run("cp.async.wait_all").current;
  for (const Fiber::Copy& c : f->async_copies) std::memcpy(c.dst, c.src, c.bytes);
  f->async_copies.clear();
}

void run_grid(dim3 grid, dim3 block, size_t shared_bytes, const char* kernel, const std::function<void()>& thread) {
  if (g_block != nullptr) throw std::logic_error(std::string("CUDA emulation: ") + kernel + " launched from a kernel");
  // One launch at a time in the process, like one GPU running one kernel: __shared__ variables are static, so two
  // host threads launching at once would otherwise share them.
  static std::mutex one_launch_at_a_time;
  std::lock_guard<std::mutex> lock(one_launch_at_a_time);
  const size_t threads = static_cast<size_t>(block.x) * block.y * block.z;
  if (threads == 0 || threads > 1024 || grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.y > 65535 || grid.z > 65535)
    throw std::runtime_error(std::string("CUDA emulation: ") + kernel + ": invalid launch configuration");
  if (shared_bytes > kMaxDynamicShared)
    throw std::runtime_error(std::string("CUDA emulation: ") + kernel + ": " + std::to_string(shared_bytes) +
                             " bytes of dynamic shared memory, more than an H100 block may have");
  std::unique_ptr<unsigned char[]> shared(shared_bytes ? new unsigned char[shared_bytes + 128] : nullptr);
  unsigned char* shared_base = nullptr;
  if (shared) shared_base = shared.get() + (128 - reinterpret_cast<uintptr_t>(shared.get()) % 128) % 128;
  if (g_fiber_pool == nullptr) g_fiber_pool = new std::vector<Fiber>();
  std::vector<Fiber>& pool = *g_fiber_pool;
  if (pool.size() < threads) pool.resize(threads);
  BlockRun run;
  run.body = &thread;
  run.shared = shared_base;
  run.fibers = pool.data();
  run.n = threads;
  g_block = &run;
  struct Restore {
    ~Restore() { g_block = nullptr; }
  } restore;
  for (unsigned bz = 0; bz < grid.z; ++bz)
    for (unsigned by = 0; by < grid.y; ++by)
      for (unsigned bx = 0; bx < grid.x; ++bx) {
        if (shared_base) std::memset(shared_base, 0xff, shared_bytes);
        size_t i = 0;
        for (unsigned tz = 0; tz < block.z; ++tz)
          for (unsigned ty = 0; ty < block.y; ++ty)
            for (unsigned tx = 0; tx < block.x; ++tx, ++i) {
              Fiber& f = pool[i];
              if (!f.stack) f.stack.reset(new char[kStackBytes]);
              f.state = State::Runnable;
              f.async_copies.clear();  // a thread that exits with copies pending: they land in a finished block
              f.coords = ThreadCoords{uint3{tx, ty, tz}, uint3{bx, by, bz}, block, grid};
              fiber_prepare(&f.context, f.stack.get(), kStackBytes, fiber_main, &run);
            }
        run_block(run, kernel);
      }
}

}  // namespace erl_emu
