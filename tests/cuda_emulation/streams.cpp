// Streams and events of the CUDA emulation (see cuda_emulation.h). Work submitted to a stream (a kernel launch, an
// async copy or memset, an event record, a wait on an event) is queued, not run: it runs, in submission order,
// only when something needs it finished: a synchronisation of its stream, of an event recorded after it or of the
// device, a stream that waits on such an event and is itself being run, a cuBLASLt call on the same stream
// (fake_cublaslt.cpp runs the queue first), or cudaFree (which synchronises the device, as on a GPU). Each stream's
// work thus runs as late as the CUDA ordering rules allow, and work on different streams interleaves only where the
// code orders it with events: a missing cudaStreamWaitEvent makes the reader see the values from before the
// writer's work (a wrong result, as the race may give on a GPU). A wait covers the event's record at the time of the
// call (as on a GPU), which lies in the past, so waits cannot form a cycle; the emulation still checks that running a
// stream never re-enters it, rather than trust that.
//
// The legacy default stream (null) is not emulated as a queue: work on it runs at once and does not wait for the
// other streams; the backend's streams are non-blocking, which a GPU does not order against it either.
// One host thread at a time runs emulated work (a process-wide lock, as a GPU is shared by the process).
#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <unordered_map>
#include <utility>

#include "tests/cuda_emulation/cuda_emulation.h"

namespace erl_emu {
namespace {

using Clock = std::chrono::steady_clock;

struct Stream {
  std::deque<std::function<void()>> queue;  // submitted, not yet run, in submission order
  uint64_t submitted = 0;                   // items ever submitted
  uint64_t done = 0;                        // items run to completion (the first `done` of them)
  bool running = false;                     // an item of this stream is running now
};

struct Event {
  std::shared_ptr<Stream> stream;  // of the last record; null: recorded on the legacy stream (complete at once)
  uint64_t position = 0;           // that record follows this many items of `stream`
  uint64_t generation = 0;         // records so far (a re-record supersedes the marker of an earlier one)
  Clock::time_point when = Clock::now();
};
struct EventHandle {
  std::shared_ptr<Event> event;  // shared with the record's marker, which may run after cudaEventDestroy
};

// The emulated device's streams (process-wide, as a GPU's are).
struct Streams {
  std::recursive_mutex mutex;
  std::unordered_map<Stream*, std::shared_ptr<Stream>> live;
};
Streams& streams() {
  static Streams s;
  return s;
}

std::shared_ptr<Stream> stream_of(cudaStream_t handle) {
  if (handle == nullptr) return nullptr;
  auto it = streams().live.find(reinterpret_cast<Stream*>(handle));
  if (it == streams().live.end()) throw std::logic_error("CUDA emulation: work on a stream that does not exist");
  return it->second;
}

// Runs the stream's items until `position` of them are done. An item that is a wait runs other streams in turn;
// reaching a stream that is running already would be a cycle of waits (which CUDA's record-then-wait order rules
// out): an error rather than a recursion.
void run_through(Stream* s, uint64_t position) {
  if (s == nullptr) return;
  while (s->done < position) {
    if (s->running)
      throw std::logic_error("CUDA emulation: a stream's work waits, through other streams, on the stream itself");
    std::function<void()> work = std::move(s->queue.front());
    s->queue.pop_front();
    s->running = true;
    try {
      work();
    } catch (...) {
      s->running = false;
      ++s->done;
      throw;
    }
    s->running = false;
    ++s->done;
  }
}

void run_all() {
  for (bool more = true; more;) {
    more = false;
    for (auto& [raw, s] : streams().live) {
      if (s->done < s->submitted) {
        run_through(s.get(), s->submitted);
        more = true;
      }
    }
  }
}

Event& event_of(cudaEvent_t e) { return *reinterpret_cast<EventHandle*>(e)->event; }

}  // namespace

void submit(cudaStream_t stream, std::function<void()> work) {
  std::lock_guard<std::recursive_mutex> lock(streams().mutex);
  std::shared_ptr<Stream> s = stream_of(stream);
  if (!s) {
    work();
    return;
  }
  s->queue.push_back(std::move(work));
  ++s->submitted;
}

void finish_stream(cudaStream_t stream) {
  std::lock_guard<std::recursive_mutex> lock(streams().mutex);
  std::shared_ptr<Stream> s = stream_of(stream);
  if (s) run_through(s.get(), s->submitted);
}

void finish_device() {
  std::lock_guard<std::recursive_mutex> lock(streams().mutex);
  run_all();
}

}  // namespace erl_emu

using erl_emu::Clock;

extern "C" {

cudaError_t cudaStreamCreate(cudaStream_t* stream) {
  std::lock_guard<std::recursive_mutex> lock(erl_emu::streams().mutex);
  auto s = std::make_shared<erl_emu::Stream>();
  erl_emu::streams().live[s.get()] = s;
  *stream = reinterpret_cast<cudaStream_t>(s.get());
  return cudaSuccess;
}
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned int) { return cudaStreamCreate(stream); }
cudaError_t cudaStreamCreateWithPriority(cudaStream_t* stream, unsigned int, int) { return cudaStreamCreate(stream); }
cudaError_t cudaDeviceGetStreamPriorityRange(int* least, int* greatest) {
  if (least) *least = 0;
  if (greatest) *greatest = -5;
  return cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  std::lock_guard<std::recursive_mutex> lock(erl_emu::streams().mutex);
  erl_emu::finish_stream(stream);  // a GPU finishes the work of a destroyed stream
  erl_emu::streams().live.erase(reinterpret_cast<erl_emu::Stream*>(stream));
  return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
  erl_emu::finish_stream(stream);
  return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize() {
  erl_emu::finish_device();
  return cudaSuccess;
}

cudaError_t cudaEventCreate(cudaEvent_t* event) {
  *event = reinterpret_cast<cudaEvent_t>(new erl_emu::EventHandle{std::make_shared<erl_emu::Event>()});
  return cudaSuccess;
}
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned int) { return cudaEventCreate(event); }
cudaError_t cudaEventDestroy(cudaEvent_t event) {
  std::lock_guard<std::recursive_mutex> lock(erl_emu::streams().mutex);
  delete reinterpret_cast<erl_emu::EventHandle*>(event);
  return cudaSuccess;
}

// The record marks the stream's position now; its timestamp is taken when the stream's work reaches it.
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
  std::lock_guard<std::recursive_mutex> lock(erl_emu::streams().mutex);
  std::shared_ptr<erl_emu::Event> e = reinterpret_cast<erl_emu::EventHandle*>(event)->event;
  const uint64_t generation = ++e->generation;
  e->stream = erl_emu::stream_of(stream);
  e->position = e->stream ? e->stream->submitted + 1 : 0;  // through the marker itself
  erl_emu::submit(stream, [e, generation] {
    if (e->generation == generation) e->when = Clock::now();
  });
  return cudaSuccess;
}

// The wait covers the event's last record at the time of this call (as on a GPU), not a later re-record.
cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned int) {
  std::lock_guard<std::recursive_mutex> lock(erl_emu::streams().mutex);
  const erl_emu::Event& e = erl_emu::event_of(event);
  std::shared_ptr<erl_emu::Stream> target = e.stream;
  const uint64_t position = e.position;
  erl_emu::submit(stream, [target, position] { erl_emu::run_through(target.get(), position); });
  return cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t event) {
  std::lock_guard<std::recursive_mutex> lock(erl_emu::streams().mutex);
  const erl_emu::Event& e = erl_emu::event_of(event);
  erl_emu::run_through(e.stream.get(), e.position);
  return cudaSuccess;
}
cudaError_t cudaEventQuery(cudaEvent_t event) { return cudaEventSynchronize(event); }

cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  cudaEventSynchronize(start);
  cudaEventSynchronize(end);
  const auto d = erl_emu::event_of(end).when - erl_emu::event_of(start).when;
  *ms = std::chrono::duration<float, std::milli>(d).count();
  return cudaSuccess;
}

}  // extern "C"
