// AdamW on fp32 master weights, the global-norm reduction and small vector ops.
//   g = grad * grad_scale;  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
//   p -= lr/bc1 * m / (sqrt(v)/sqrt(bc2) + eps) + lr*wd * p        (bc_i = 1 - beta_i^step; same float ops as CPU)
// sum_squares: fixed 64K-element chunks, each one block's fixed tree in double, then one block sums the chunk
// results in a fixed tree: the same bits for a given n on every run (deterministic global grad norm).
// Both run over a table of spans (adamw_update_spans, sum_squares_spans; the per-tensor forms are one span): one
// launch for the whole parameter table (a span table in the scratch; block b works on chunk b of the span found by
// binary search), chunks counted from each span's start, so a tensor gets the same bits alone or within a table:
// the trainer's ~400 tensors (1.3B) cost one AdamW launch and one host synchronisation for the norm.
#include <cuda_bf16.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "runtime/cuda/storage.cuh"

namespace erlangshen::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kChunk = 65536;

// The bias-corrected step's scalars, in float as the CPU kernel has them.
struct AdamWScalars {
  float b1, b2, gs, step_size, inv_sqrt_bc2, e;
};

AdamWScalars adamw_scalars(double lr, double beta1, double beta2, double eps, int64_t step, double grad_scale) {
  const double bc1 = 1.0 - std::pow(beta1, static_cast<double>(step));
  const double bc2 = 1.0 - std::pow(beta2, static_cast<double>(step));
  return {float(beta1), float(beta2), float(grad_scale), float(lr / bc1), float(1.0 / std::sqrt(bc2)), float(eps)};
}

// One element's update; every AdamW kernel goes through it, so all of them give the same bits.
__device__ __forceinline__ void adamw_element(float& p, float grad, float& m, float& v, const AdamWScalars& a,
                                              float decay) {
  const float g = grad * a.gs;
  m = a.b1 * m + (1.0f - a.b1) * g;
  v = a.b2 * v + (1.0f - a.b2) * g * g;
  p -= a.step_size * m / (sqrtf(v) * a.inv_sqrt_bc2 + a.e) + decay * p;
}

// ---- multi-tensor forms: one launch over a table of spans, one block per fixed-size chunk of a span ----

// A span of a multi-tensor launch as the device reads it: the FlatSpan and the index of its first chunk (block).
struct SpanChunks {
  int64_t offset, n, first_chunk;
  float decay;  // AdamW: lr * weight_decay on decayed spans, else 0
};

// The span that block `chunk` works on: the last s with first_chunk <= chunk (spans without chunks are skipped,
// since the span after them starts at the same chunk). count >= 1.
__device__ __forceinline__ int span_of_chunk(const SpanChunks* spans, int count, int64_t chunk) {
  int lo = 0, hi = count - 1;
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (spans[mid].first_chunk <= chunk)
      lo = mid;
    else
      hi = mid - 1;
  }
  return lo;
}

constexpr int64_t kAdamChunk = 4 * 4 * kThreads;  // elements per block: 4 float4 steps of 256 threads

// adamw_element on chunk blockIdx.x of its span; copy (may be null) gets bf16(p). vec: param, grad, m, v 16-byte
// aligned and copy 8-byte aligned, so a chunk starting at a multiple of 4 runs 4 elements per load; the rest of
// it (and any chunk of a span at an odd offset) runs element by element, with the same element function.
__global__ void adamw_spans_kernel(float* param, const float* grad, float* m, float* v, __nv_bfloat16* copy,
                                   const SpanChunks* spans, int count, AdamWScalars a, bool vec) {
  const SpanChunks sp = spans[span_of_chunk(spans, count, blockIdx.x)];
  const int64_t begin = sp.offset + (blockIdx.x - sp.first_chunk) * kAdamChunk;
  const int64_t end = begin + kAdamChunk < sp.offset + sp.n ? begin + kAdamChunk : sp.offset + sp.n;
  int64_t scalar_from = begin;
  if (vec && begin % 4 == 0) {
    const int64_t n4 = (end - begin) / 4;
    for (int64_t k = threadIdx.x; k < n4; k += blockDim.x) {
      const int64_t i = begin + 4 * k;
      float4 p = load4(param + i), mi = load4(m + i), vi = load4(v + i), gr = load4(grad + i);
      for (int w = 0; w < 4; ++w) adamw_element(lane(p, w), lane(gr, w), lane(mi, w), lane(vi, w), a, sp.decay);
      store4(m + i, mi);
      store4(v + i, vi);
      store4(param + i, p);
      if (copy != nullptr) store4(copy + i, p);
    }
    scalar_from = begin + 4 * n4;
  }
  for (int64_t i = scalar_from + threadIdx.x; i < end; i += blockDim.x) {
    adamw_element(param[i], grad[i], m[i], v[i], a, sp.decay);
    if (copy != nullptr) copy[i] = from_f32<__nv_bfloat16>(param[i]);
  }
}

// Chunk blockIdx.x of its span (chunks of kChunk from the span's start) -> partial[blockIdx.x]: its elements' squares
// in double, each thread's strided share in order, then block_sum's fixed tree.
__global__ void sum_squares_spans_chunks_kernel(double* partial, const float* x, const SpanChunks* spans, int count) {
  __shared__ double smem[32];
  const SpanChunks sp = spans[span_of_chunk(spans, count, blockIdx.x)];
  const float* xs = x + sp.offset;
  const int64_t begin = (blockIdx.x - sp.first_chunk) * kChunk;
  const int64_t end = begin + kChunk < sp.n ? begin + kChunk : sp.n;
  double s = 0.0;
  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) s += static_cast<double>(xs[i]) * xs[i];
  s = block_sum(s, smem);
  if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

// Block s (1024 threads): span s's chunk results in the same fixed tree -> result[s] (0 for an empty span).
__global__ void sum_squares_spans_finish_kernel(double* result, const double* partial, const SpanChunks* spans,
                                                int count, int64_t total_chunks) {
  __shared__ double smem[32];
  const int64_t first = spans[blockIdx.x].first_chunk;
  const int64_t chunks = (blockIdx.x + 1 < count ? spans[blockIdx.x + 1].first_chunk : total_chunks) - first;
  double s = 0.0;
  for (int64_t i = threadIdx.x; i < chunks; i += blockDim.x) s += partial[first + i];
  s = block_sum(s, smem);
  if (threadIdx.x == 0) result[blockIdx.x] = s;
}

// Bytes of a table of `count` spans in the scratch, rounded up to 16 (what follows it stays 16-byte aligned).
size_t span_table_bytes(int count) { return (sizeof(SpanChunks) * static_cast<size_t>(count) + 15) / 16 * 16; }

// The device table of `count` spans cut into chunks of `chunk` elements, at the start of the Context scratch,
// uploaded on the stream; the caller may use extra_per_chunk * chunks + extra bytes after its
// span_table_bytes(count). *total_chunks = the chunks of all spans.
SpanChunks* upload_span_table(Launch l, Context& ctx, const FlatSpan* spans, int count, int64_t chunk, double decay,
                              size_t extra_per_chunk, size_t extra, int64_t* total_chunks, const char* who) {
  std::vector<SpanChunks> table(static_cast<size_t>(count));
  int64_t chunks = 0;
  for (int s = 0; s < count; ++s) {
    ERL_CHECK(spans[s].n >= 0 && spans[s].offset >= 0, who << ": span " << s << " is negative");
    table[s] = SpanChunks{spans[s].offset, spans[s].n, chunks, spans[s].decay ? float(decay) : 0.0f};
    chunks += (spans[s].n + chunk - 1) / chunk;
  }
  ERL_CHECK(chunks < (int64_t(1) << 31), who << ": too many chunks (" << chunks << ")");
  *total_chunks = chunks;
  auto* device_table = static_cast<SpanChunks*>(
      ctx.scratch(span_table_bytes(count) + extra_per_chunk * static_cast<size_t>(chunks) + extra, who));
  ERL_CUDA_CHECK(cudaMemcpyAsync(device_table, table.data(), sizeof(SpanChunks) * table.size(), cudaMemcpyHostToDevice,
                                 stream_of(l)));  // pageable source: staged before the call returns
  return device_table;
}

__global__ void scale_kernel(float* x, int64_t n, float f) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    x[i] *= f;
}
__global__ void fill_kernel(float* x, int64_t n, float value) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    x[i] = value;
}
__global__ void add_kernel(float* y, const float* x, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    y[i] += x[i];
}
__global__ void to_bf16_kernel(__nv_bfloat16* dst, const float* src, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    dst[i] = __float2bfloat16_rn(src[i]);
}
// The same on 16-byte-aligned src and dst, 8 elements per thread per step (two 16-byte loads, one 16-byte store):
// GEMM operand staging is memory-bound, so the access width matters. n8 = n / 8 groups; the tail goes scalar.
__global__ void to_bf16_x8_kernel(uint4* dst, const float4* src, int64_t n8) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n8; i += int64_t(gridDim.x) * blockDim.x) {
    const float4 a = src[2 * i], b = src[2 * i + 1];
    const __nv_bfloat162 p0 = __floats2bfloat162_rn(a.x, a.y), p1 = __floats2bfloat162_rn(a.z, a.w),
                         p2 = __floats2bfloat162_rn(b.x, b.y), p3 = __floats2bfloat162_rn(b.z, b.w);
    uint4 out;
    out.x = *reinterpret_cast<const uint32_t*>(&p0);
    out.y = *reinterpret_cast<const uint32_t*>(&p1);
    out.z = *reinterpret_cast<const uint32_t*>(&p2);
    out.w = *reinterpret_cast<const uint32_t*>(&p3);
    dst[i] = out;
  }
}
__global__ void from_bf16_kernel(float* dst, const __nv_bfloat16* src, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    dst[i] = __bfloat162float(src[i]);
}

}  // namespace

// The per-tensor forms: one span each (the same kernels, so the same bits as that tensor within a table).
void adamw_update(Launch l, float* param, const float* grad, float* m, float* v, int64_t n, double lr, double beta1,
                  double beta2, double eps, double weight_decay, int64_t step, double grad_scale) {
  const FlatSpan all{0, n, true};
  adamw_update_spans(l, param, grad, m, v, nullptr, &all, n > 0 ? 1 : 0, lr, beta1, beta2, eps, weight_decay, step,
                     grad_scale);
}

double sum_squares(Launch l, const float* x, int64_t n) {
  if (n <= 0) return 0.0;
  const FlatSpan all{0, n, false};
  double result = 0.0;
  sum_squares_spans(l, x, &all, 1, &result);
  return result;
}

void adamw_update_spans(Launch l, float* param, const float* grad, float* m, float* v, bf16* compute_copy,
                        const FlatSpan* spans, int count, double lr, double beta1, double beta2, double eps,
                        double weight_decay, int64_t step, double grad_scale) {
  if (count <= 0) return;
  Context& ctx = need_context(l, "adamw_update_spans");
  int64_t chunks = 0;
  const SpanChunks* table =
      upload_span_table(l, ctx, spans, count, kAdamChunk, lr * weight_decay, 0, 0, &chunks, "adamw_update_spans");
  if (chunks == 0) return;
  const bool vec = aligned16(param) && aligned16(grad) && aligned16(m) && aligned16(v) &&
                   reinterpret_cast<uintptr_t>(compute_copy) % 8 == 0;
  ERL_KERNEL(static_cast<unsigned>(chunks), kThreads, 0, stream_of(l), adamw_spans_kernel)(
      param, grad, m, v, reinterpret_cast<__nv_bfloat16*>(compute_copy), table, count,
      adamw_scalars(lr, beta1, beta2, eps, step, grad_scale), vec);
  ERL_CUDA_LAUNCHED();
}

namespace {

// The two kernels of sum_squares_spans: chunk partials into the scratch, then each span's sum into `result`
// (device; null: the scratch after the partials). Returns where the span sums went.
double* launch_sum_squares_spans(Launch l, const float* x, const FlatSpan* spans, int count, double* result,
                                 const char* who) {
  Context& ctx = need_context(l, who);
  int64_t chunks = 0;
  // Scratch: the span table, the chunk results (chunks doubles), the span results (count doubles) unless given.
  const SpanChunks* table = upload_span_table(l, ctx, spans, count, kChunk, 0.0, sizeof(double),
                                              result ? 0 : sizeof(double) * static_cast<size_t>(count), &chunks, who);
  auto* partial = reinterpret_cast<double*>(reinterpret_cast<uintptr_t>(table) + span_table_bytes(count));
  if (result == nullptr) result = partial + chunks;
  if (chunks > 0) {
    ERL_KERNEL(static_cast<unsigned>(chunks), kThreads, 0, stream_of(l), sum_squares_spans_chunks_kernel)(
        partial, x, table, count);
    ERL_CUDA_LAUNCHED();
  }
  ERL_KERNEL(static_cast<unsigned>(count), 1024, 0, stream_of(l), sum_squares_spans_finish_kernel)(
      result, partial, table, count, chunks);
  ERL_CUDA_LAUNCHED();
  return result;
}

}  // namespace

void sum_squares_spans(Launch l, const float* x, const FlatSpan* spans, int count, double* out) {
  if (count <= 0) return;
  const double* result = launch_sum_squares_spans(l, x, spans, count, nullptr, "sum_squares_spans");
  ERL_CUDA_CHECK(cudaMemcpyAsync(out, result, sizeof(double) * count, cudaMemcpyDeviceToHost, stream_of(l)));
  ERL_CUDA_CHECK(cudaStreamSynchronize(stream_of(l)));
}

void sum_squares_spans_into(Launch l, const float* x, const FlatSpan* spans, int count, double* device_out) {
  if (count <= 0) return;
  launch_sum_squares_spans(l, x, spans, count, device_out, "sum_squares_spans_into");
}

void scale(Launch l, float* x, int64_t n, double s) {
  if (n <= 0) return;
  ERL_KERNEL(grid_for(n, kThreads), kThreads, 0, stream_of(l), scale_kernel)(x, n, float(s));
  ERL_CUDA_LAUNCHED();
}

void fill(Launch l, float* x, int64_t n, float value) {
  if (n <= 0) return;
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  if (bits == 0) {  // +0.0f is all zero bytes: the driver's memset (the gradients each step: 5 GB for the 1.3B model)
    ERL_CUDA_CHECK(cudaMemsetAsync(x, 0, sizeof(float) * static_cast<size_t>(n), stream_of(l)));
    return;
  }
  ERL_KERNEL(grid_for(n, kThreads), kThreads, 0, stream_of(l), fill_kernel)(x, n, value);
  ERL_CUDA_LAUNCHED();
}

void add_inplace(Launch l, float* y, const float* x, int64_t n) {
  if (n <= 0) return;
  ERL_KERNEL(grid_for(n, kThreads), kThreads, 0, stream_of(l), add_kernel)(y, x, n);
  ERL_CUDA_LAUNCHED();
}

void float_to_bf16(Launch l, uint16_t* dst, const float* src, int64_t n) {
  if (n <= 0) return;
  int64_t done = 0;
  if (aligned16(dst) && aligned16(src) && n >= 8) {
    const int64_t n8 = n / 8;
    ERL_KERNEL(grid_for(n8, kThreads), kThreads, 0, stream_of(l), to_bf16_x8_kernel)(reinterpret_cast<uint4*>(dst),
                                                                            reinterpret_cast<const float4*>(src), n8);
    ERL_CUDA_LAUNCHED();
    done = 8 * n8;
  }
  if (done == n) return;
  ERL_KERNEL(grid_for(n - done, kThreads), kThreads, 0, stream_of(l), to_bf16_kernel)(
      reinterpret_cast<__nv_bfloat16*>(dst) + done, src + done, n - done);
  ERL_CUDA_LAUNCHED();
}

void bf16_to_float(Launch l, float* dst, const uint16_t* src, int64_t n) {
  if (n <= 0) return;
  ERL_KERNEL(grid_for(n, kThreads), kThreads, 0, stream_of(l), from_bf16_kernel)(dst, reinterpret_cast<const __nv_bfloat16*>(src),
                                                                         n);
  ERL_CUDA_LAUNCHED();
}

}  // namespace erlangshen::cuda
