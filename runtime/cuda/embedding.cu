// Embeddings: vocab-parallel word lookup and position + token-type embeddings.
//   forward:  out[n] = word[id_n - vocab_start] (0 if the id is not in this shard);  out[b, t] += pos[t] + type[y_bt]
//   backward: dword[v] += sum over tokens n with id_n = v of dout[n], in token order, from the batch's token-rows
//             index (runtime/token_rows.h): one block per listed row and column range adds the row's tokens in
//             order (no atomics: the CPU scan's additions, bit for bit), reading each dout row once (a scan of every
//             id by every block, its predecessor, took 4.8 ms of a 1.3B step on an H200);
//             dpos[t] += sum_b dout[b, t] in b order; dtype[y] += sum over tokens of type y (deterministic
//             two-stage column sums).
#include "runtime/cuda/colsum.cuh"

namespace erlangshen::cuda {
namespace {

constexpr int kThreads = 256;

__global__ void word_embedding_forward_kernel(float* out, const int32_t* ids, const float* word, int C,
                                              int vocab_start, int V_local) {
  const int n = blockIdx.x;
  const int local = ids[n] - vocab_start;
  float* o = out + static_cast<int64_t>(n) * C;
  const bool here = local >= 0 && local < V_local;
  const float* w = word + static_cast<int64_t>(here ? local : 0) * C;
  for (int c = threadIdx.x; c < C; c += blockDim.x) o[c] = here ? w[c] : 0.0f;
}

constexpr int kRowThreads = 128;  // the rows kernel's block: 128 x W columns
constexpr int kRowUnroll = 16;    // dout rows loaded before they are added (in order): loads in flight per thread

__device__ __forceinline__ void add_to(float& a, float b) { a += b; }
__device__ __forceinline__ void add_to(float4& a, const float4& b) {
  a.x += b.x;
  a.y += b.y;
  a.z += b.z;
  a.w += b.w;
}

// Block (r, y): listed row r's tokens [start[r], start[r+1]), columns (y kRowThreads + t) W .. + W - 1 for thread t;
// W = 4 (float4 loads: C % 4 == 0, 16-byte-aligned rows) or 1. The row's long lists (a [MASK] token: ~15% of the
// batch) are one chain of in-order adds per column, kRowUnroll loads ahead.
template <int W>
__global__ void word_embedding_backward_rows_kernel(float* dword, const float* dout, const int32_t* row,
                                                    const int32_t* start, const int32_t* tokens, int C) {
  using Vec = std::conditional_t<W == 4, float4, float>;
  const int c = (blockIdx.y * kRowThreads + threadIdx.x) * W;
  if (c >= C) return;
  Vec* d = reinterpret_cast<Vec*>(dword + static_cast<int64_t>(row[blockIdx.x]) * C + c);
  auto dout_at = [&](int k) { return *reinterpret_cast<const Vec*>(dout + static_cast<int64_t>(tokens[k]) * C + c); };
  Vec acc = *d;
  const int end = start[blockIdx.x + 1];
  int k = start[blockIdx.x];
  for (; k + kRowUnroll <= end; k += kRowUnroll) {
    Vec g[kRowUnroll];
#pragma unroll
    for (int u = 0; u < kRowUnroll; ++u) g[u] = dout_at(k + u);
#pragma unroll
    for (int u = 0; u < kRowUnroll; ++u) add_to(acc, g[u]);
  }
  for (; k < end; ++k) add_to(acc, dout_at(k));
  *d = acc;
}

// Block = token bt (blockIdx.x), threads over its C columns: no 64-bit division per element.
__global__ void position_type_forward_kernel(float* out, const int32_t* type_ids, const float* pos, const float* type,
                                             int Tn, int C) {
  const int64_t bt = blockIdx.x;
  const float* p = pos + static_cast<int64_t>(bt % Tn) * C;
  const float* y = type + static_cast<int64_t>(type_ids[bt]) * C;
  float* o = out + bt * C;
  for (int c = threadIdx.x; c < C; c += blockDim.x) o[c] += p[c] + y[c];
}

__global__ void position_backward_kernel(float* dpos, const float* dout, int B, int Tn, int C) {
  const int64_t total = static_cast<int64_t>(Tn) * C;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    float s = 0.0f;
    for (int b = 0; b < B; ++b) s += dout[static_cast<int64_t>(b) * total + i];
    dpos[i] += s;
  }
}

// f(n, c) = dout[n, c] if type_ids[n] == y else 0
struct RowsOfType {
  const float* dout;
  const int32_t* type_ids;
  int C, y;
  __device__ float operator()(int n, int c) const {
    return type_ids[n] == y ? dout[static_cast<int64_t>(n) * C + c] : 0.0f;
  }
};

}  // namespace

void word_embedding_forward(Launch l, float* out, const int32_t* ids, const float* word, int N, int C,
                            int vocab_start, int V_local) {
  if (N <= 0) return;
  ERL_KERNEL(N, kThreads, 0, stream_of(l), word_embedding_forward_kernel)(out, ids, word, C, vocab_start, V_local);
  ERL_CUDA_LAUNCHED();
}

void word_embedding_backward_rows(Launch l, float* dword, const float* dout, const TokenRows& rows, int C) {
  if (rows.rows <= 0 || C <= 0) return;
  const bool vec4 = C % 4 == 0 && aligned16(dword) && aligned16(dout);
  const int W = vec4 ? 4 : 1;
  const dim3 grid(static_cast<unsigned>(rows.rows), static_cast<unsigned>((C + W * kRowThreads - 1) / (W * kRowThreads)));
  if (vec4)
    ERL_KERNEL(grid, kRowThreads, 0, stream_of(l), word_embedding_backward_rows_kernel<4>)(dword, dout, rows.row,
                                                                                         rows.start, rows.tokens, C);
  else
    ERL_KERNEL(grid, kRowThreads, 0, stream_of(l), word_embedding_backward_rows_kernel<1>)(dword, dout, rows.row,
                                                                                         rows.start, rows.tokens, C);
  ERL_CUDA_LAUNCHED();
}

void position_type_embedding_forward(Launch l, float* out, const int32_t* type_ids, const float* pos,
                                     const float* type, int B, int Tn, int C) {
  if (static_cast<int64_t>(B) * Tn * C == 0) return;
  ERL_KERNEL(B * Tn, kThreads, 0, stream_of(l), position_type_forward_kernel)(out, type_ids, pos, type, Tn, C);
  ERL_CUDA_LAUNCHED();
}

void position_type_embedding_backward(Launch l, float* dpos, float* dtype, const float* dout,
                                      const int32_t* type_ids, int B, int Tn, int C, int type_vocab) {
  if (int64_t(B) * Tn * C == 0) return;
  if (dpos) {
    ERL_KERNEL(grid_for(int64_t(Tn) * C, kThreads), kThreads, 0, stream_of(l), position_backward_kernel)(dpos, dout, B, Tn, C);
    ERL_CUDA_LAUNCHED();
  }
  if (dtype)
    for (int y = 0; y < type_vocab; ++y)
      colsum_add(l, "position_type_embedding_backward", dtype + static_cast<int64_t>(y) * C, B * Tn, C,
                 RowsOfType{dout, type_ids, C, y});
}

}  // namespace erlangshen::cuda
