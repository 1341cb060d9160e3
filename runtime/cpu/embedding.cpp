// Embeddings: vocab-parallel word lookup, then position + token-type embeddings (added after the
// word lookup's TP all-reduce, as Megatron does).
#include <cstring>

#include "runtime/cpu/kernels.h"
#include "runtime/cpu/parallel_for.h"

namespace erlangshen::cpu {

template <class T>
void word_embedding_forward(T* out, const int32_t* ids, const T* word, int N, int C, int vocab_start, int V_local) {
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; ++n) {
    const int local = ids[n] - vocab_start;
    T* o = out + static_cast<int64_t>(n) * C;
    if (local >= 0 && local < V_local) std::memcpy(o, word + static_cast<int64_t>(local) * C, sizeof(T) * C);
    else std::memset(o, 0, sizeof(T) * C);
  }
}

template <class T>
void word_embedding_backward(T* dword, const T* dout, const int32_t* ids, int N, int C, int vocab_start, int V_local) {
  // Threads own disjoint column blocks; tokens are visited in order, so the sum order is fixed.
  parallel_blocks(C, 16, [&](int64_t c0, int64_t c1) {
    for (int n = 0; n < N; ++n) {
      const int local = ids[n] - vocab_start;
      if (local < 0 || local >= V_local) continue;
      T* d = dword + static_cast<int64_t>(local) * C;
      const T* g = dout + static_cast<int64_t>(n) * C;
      for (int64_t c = c0; c < c1; ++c) d[c] += g[c];
    }
  });
}

template <class T>
void word_embedding_backward_rows(T* dword, const T* dout, const TokenRows& rows, int C) {
  parallel_blocks(C, 16, [&](int64_t c0, int64_t c1) {
    for (int r = 0; r < rows.rows; ++r) {
      T* d = dword + static_cast<int64_t>(rows.row[r]) * C;
      for (int k = rows.start[r]; k < rows.start[r + 1]; ++k) {
        const T* g = dout + static_cast<int64_t>(rows.tokens[k]) * C;
        for (int64_t c = c0; c < c1; ++c) d[c] += g[c];
      }
    }
  });
}

template <class T>
void position_type_embedding_forward(T* out, const int32_t* type_ids, const T* pos, const T* type, int B, int Tn, int C) {
#pragma omp parallel for schedule(static)
  for (int64_t bt = 0; bt < static_cast<int64_t>(B) * Tn; ++bt) {
    const int t = static_cast<int>(bt % Tn);
    T* o = out + bt * C;
    const T* p = pos + static_cast<int64_t>(t) * C;
    const T* y = type + static_cast<int64_t>(type_ids[bt]) * C;
    for (int c = 0; c < C; ++c) o[c] += p[c] + y[c];
  }
}

template <class T>
void position_type_embedding_backward(T* dpos, T* dtype, const T* dout, const int32_t* type_ids, int B, int Tn, int C,
                                      int type_vocab) {
  parallel_blocks(C, 16, [&](int64_t c0, int64_t c1) {
    for (int b = 0; b < B; ++b)
      for (int t = 0; t < Tn; ++t) {
        const int64_t bt = static_cast<int64_t>(b) * Tn + t;
        const T* g = dout + bt * C;
        T* p = dpos + static_cast<int64_t>(t) * C;
        T* y = dtype + static_cast<int64_t>(type_ids[bt]) * C;
        for (int64_t c = c0; c < c1; ++c) {
          p[c] += g[c];
          y[c] += g[c];
        }
      }
  });
}

#define ERL_INSTANTIATE(T)                                                                                        \
  template void word_embedding_forward<T>(T*, const int32_t*, const T*, int, int, int, int);                      \
  template void word_embedding_backward<T>(T*, const T*, const int32_t*, int, int, int, int);                     \
  template void word_embedding_backward_rows<T>(T*, const T*, const TokenRows&, int);                            \
  template void position_type_embedding_forward<T>(T*, const int32_t*, const T*, const T*, int, int, int);        \
  template void position_type_embedding_backward<T>(T*, T*, const T*, const int32_t*, int, int, int, int);
ERL_INSTANTIATE(float)
ERL_INSTANTIATE(double)
#undef ERL_INSTANTIATE

}  // namespace erlangshen::cpu
