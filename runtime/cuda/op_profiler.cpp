// OpProfiler (see op_profiler.h).
#include "runtime/cuda/op_profiler.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <map>

#include "runtime/cuda/context.h"
#include "runtime/cuda/cuda_check.h"

namespace erlangshen::cuda {

struct OpProfiler::Impl {
  explicit Impl(cudaStream_t s) : stream(s) {}
  cudaStream_t stream;
  std::vector<cudaEvent_t> events;  // pool, reused after collect()
  size_t used = 0;
  struct Span {
    std::string name;
    double flops;
    size_t start, stop;  // events
  };
  std::vector<Span> spans, gemms;
  size_t gemm_start = 0;
  int depth = 0;
  size_t open_start = 0;
  const char* open_op = nullptr;

  size_t record() {
    if (used == events.size()) {
      cudaEvent_t e;
      ERL_CUDA_CHECK(cudaEventCreate(&e));
      events.push_back(e);
    }
    ERL_CUDA_CHECK(cudaEventRecord(events[used], stream));
    return used++;
  }
};

OpProfiler::OpProfiler(void* stream) : impl_(new Impl(static_cast<cudaStream_t>(stream))) {}

OpProfiler::~OpProfiler() {
  for (cudaEvent_t e : impl_->events) cudaEventDestroy(e);
  delete impl_;
}

void OpProfiler::begin(const char* op) {
  if (impl_->depth++ > 0) return;  // nested: counted in the outer op
  impl_->open_op = op;
  impl_->open_start = impl_->record();
}

void OpProfiler::end() {
  if (impl_->depth == 0 || --impl_->depth > 0) return;
  impl_->spans.push_back({impl_->open_op, 0.0, impl_->open_start, impl_->record()});
}

void OpProfiler::begin_gemm() { impl_->gemm_start = impl_->record(); }

void OpProfiler::end_gemm(const std::string& shape, double flops) {
  impl_->gemms.push_back({shape, flops, impl_->gemm_start, impl_->record()});
}

OpProfiler::Profile OpProfiler::collect() {
  ERL_CUDA_CHECK(cudaStreamSynchronize(impl_->stream));
  // Spans summed per name, largest time first.
  auto rows = [&](const std::vector<Impl::Span>& spans) {
    std::map<std::string, Row> by_name;
    for (const Impl::Span& s : spans) {
      float ms = 0.0f;
      ERL_CUDA_CHECK(cudaEventElapsedTime(&ms, impl_->events[s.start], impl_->events[s.stop]));
      Row& r = by_name[s.name];
      r.name = s.name;
      r.calls += 1;
      r.ms += ms;
      r.flops += s.flops;
    }
    std::vector<Row> out;
    for (auto& [name, r] : by_name) out.push_back(r);
    std::sort(out.begin(), out.end(), [](const Row& a, const Row& b) { return a.ms > b.ms; });
    return out;
  };
  Profile p{rows(impl_->spans), rows(impl_->gemms)};
  impl_->spans.clear();
  impl_->gemms.clear();
  impl_->used = 0;
  return p;
}

OpScope::OpScope(void* context, const char* op)
    : profiler_(context ? static_cast<Context*>(context)->profiler() : nullptr) {
  if (profiler_) profiler_->begin(op);
}

OpScope::~OpScope() {
  if (profiler_) profiler_->end();
}

}  // namespace erlangshen::cuda
