#include "runtime/side_stream.h"

#include "runtime/check.h"
#include "runtime/device_buffer.h"
#if defined(ERLANGSHEN_HAVE_CUDA)
#include "runtime/cuda/context.h"
#include "runtime/cuda/device.h"
#endif

namespace erlangshen {

SideStream::SideStream(const Exec& main, int marks) : main_(main), side_(main), marks_(marks) {
  ERL_CHECK(marks >= 1, "SideStream: needs at least one mark");
  if (!main.on_device()) return;
#if defined(ERLANGSHEN_HAVE_CUDA)
  ERL_CHECK(main.backend_context != nullptr, "SideStream: the main Exec has no CUDA Context");
  const auto& main_context = *static_cast<const cuda::Context*>(main.backend_context);
  cuda::ContextOptions options = main_context.options();
  // Elementwise work with small span tables: no GEMM workspace or epilogue vector, a small scratch.
  options.gemm_workspace_bytes = 0;
  options.epilogue_vector_bytes = 0;
  options.scratch_bytes = size_t(4) << 20;
  options.high_priority = false;  // the main stream's blocks go first where both wait (ContextOptions::high_priority)
  auto* context = new cuda::Context(options);
  context_ = std::shared_ptr<void>(context, [](void* c) { delete static_cast<cuda::Context*>(c); });
  side_ = Exec{Device::CUDA, context->stream(), context};
  for (int i = 0; i <= marks; ++i) events_.push_back(cuda::event_create());
#endif
}

SideStream::~SideStream() {
  if (!context_) return;
#if defined(ERLANGSHEN_HAVE_CUDA)
  try {
    synchronize();
  } catch (...) {  // a failed device: nothing left to wait for
  }
  for (void* e : events_) cuda::event_destroy(e);
#endif
}

void SideStream::follow_main() {
  if (!context_) return;
#if defined(ERLANGSHEN_HAVE_CUDA)
  cuda::event_record(events_[marks_], main_.stream);
  cuda::stream_wait_event(side_.stream, events_[marks_]);
#endif
}

void SideStream::mark(int i) {
  ERL_CHECK(i >= 0 && i < marks_, "SideStream: mark " << i << " of " << marks_);
  if (!context_) return;
#if defined(ERLANGSHEN_HAVE_CUDA)
  cuda::event_record(events_[i], side_.stream);
#endif
}

void SideStream::main_waits_for(int i) {
  ERL_CHECK(i >= 0 && i < marks_, "SideStream: mark " << i << " of " << marks_);
  if (!context_) return;
#if defined(ERLANGSHEN_HAVE_CUDA)
  cuda::stream_wait_event(main_.stream, events_[i]);
#endif
}

void SideStream::synchronize() { erlangshen::synchronize(side_); }

}  // namespace erlangshen
