// OpProfiler (see op_profiler.h).
#include "runtime/cuda/op_profiler.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <map>

#include "runtime/cuda/context.h"
#include "runtime/cuda/cuda_check.h"

namespace erlangshen::cuda {

struct OpProfiler::Impl {
  cudaStream_t stream;
  std::vector<cudaEvent_t> events;  // pool, reused after collect()
  size_t used = 0;
  struct Span {
    const char* op;
    size_t start, stop;
  };
  std::vector<Span> spans;
  struct GemmSpan {
    std::string shape;
    double flops;
    size_t start, stop;
  };
  std::vector<GemmSpan> gemms;
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

OpProfiler::OpProfiler(void* stream) : impl_(new Impl{static_cast<cudaStream_t>(stream)}) {}

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
  impl_->spans.push_back({impl_->open_op, impl_->open_start, impl_->record()});
}

void OpProfiler::begin_gemm() { impl_->gemm_start = impl_->record(); }

void OpProfiler::end_gemm(const std::string& shape, double flops) {
  impl_->gemms.push_back({shape, flops, impl_->gemm_start, impl_->record()});
}

OpProfiler::Profile OpProfiler::collect() {
  ERL_CUDA_CHECK(cudaStreamSynchronize(impl_->stream));
  auto elapsed = [&](size_t start, size_t stop) {
    float ms = 0.0f;
    ERL_CUDA_CHECK(cudaEventElapsedTime(&ms, impl_->events[start], impl_->events[stop]));
    return static_cast<double>(ms);
  };
  std::map<std::string, Row> by_op;
  for (const Impl::Span& s : impl_->spans) {
    Row& r = by_op[s.op];
    r.op = s.op;
    r.calls += 1;
    r.ms += elapsed(s.start, s.stop);
  }
  std::map<std::string, GemmRow> by_shape;
  for (const Impl::GemmSpan& s : impl_->gemms) {
    GemmRow& r = by_shape[s.shape];
    r.shape = s.shape;
    r.calls += 1;
    r.ms += elapsed(s.start, s.stop);
    r.flops += s.flops;
  }
  impl_->spans.clear();
  impl_->gemms.clear();
  impl_->used = 0;
  Profile p;
  for (auto& [name, r] : by_op) p.ops.push_back(r);
  for (auto& [name, r] : by_shape) p.gemms.push_back(r);
  std::sort(p.ops.begin(), p.ops.end(), [](const Row& a, const Row& b) { return a.ms > b.ms; });
  std::sort(p.gemms.begin(), p.gemms.end(), [](const GemmRow& a, const GemmRow& b) { return a.ms > b.ms; });
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
