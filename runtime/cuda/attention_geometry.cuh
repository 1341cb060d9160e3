// What the fused attention kernels (flash_attention.cu, attention_fused_forward.cu) know of one call: the shape,
// the layouts they index, and the dropout constants, with the dropout element index of attention.cu and the CPU
// backend: element (b, h, i, j) is ((sample_offset + b) * total_heads + head_offset + h) * T*T + i*T + j.
#pragma once
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "runtime/check.h"
#include "runtime/cuda/kernels.h"
#include "runtime/philox.h"

namespace erlangshen::cuda {

struct AttentionGeometry {
  int T, NH, HS, C;
  int total_heads, head_offset;
  int64_t sample_offset;
  float scale, keep_scale;  // 1 / sqrt(HS), 1 / (1 - p)
  uint32_t threshold;
  bool drop;
  PhiloxKey key;
  // Dropout index of element (b, h, i, 0).
  __device__ uint64_t drop_row(int b, int h, int i) const {
    return (static_cast<uint64_t>(sample_offset + b) * total_heads + head_offset + h) * static_cast<uint64_t>(T) * T +
           static_cast<uint64_t>(i) * T;
  }
  // Element offset of row t, slot `which` (0 Q, 1 K, 2 V) of head h in qkv (B, T, 3, NH, HS).
  __device__ int64_t qkv_row(int b, int t, int which, int h) const {
    return (static_cast<int64_t>(b) * T + t) * 3 * C + static_cast<int64_t>(which) * C + static_cast<int64_t>(h) * HS;
  }
  // Element offset of row t of head h in a (B, T, NH, HS) tensor (out, dout).
  __device__ int64_t o_row(int b, int t, int h) const {
    return (static_cast<int64_t>(b) * T + t) * C + static_cast<int64_t>(h) * HS;
  }
  // Index of query row i of head h of sample b among the B NH T rows (row statistics; times T: a T x T row).
  __device__ int64_t stat_row(int b, int h, int i) const { return (static_cast<int64_t>(b) * NH + h) * T + i; }
};

inline AttentionGeometry attention_geometry(const AttentionShape& s, const DropoutSpec& d) {
  AttentionGeometry g;
  g.T = s.Tn, g.NH = s.NH, g.HS = s.HS, g.C = s.NH * s.HS;
  g.total_heads = s.total_heads > 0 ? s.total_heads : s.NH;
  g.head_offset = s.head_offset;
  g.sample_offset = s.sample_offset;
  g.scale = 1.0f / std::sqrt(static_cast<float>(s.HS));
  g.keep_scale = 1.0f / (1.0f - d.p);
  g.threshold = dropout_threshold(d.p);
  g.drop = d.p > 0.0f;
  g.key = d.key;
  return g;
}

// f(integral_constant<HS>) for the head sizes the fused kernels take (64, 128, 256); `op` names the caller in the
// error for another.
template <class F>
void with_head_size(int HS, const char* op, F&& f) {
  switch (HS) {
    case 64:
      return f(std::integral_constant<int, 64>());
    case 128:
      return f(std::integral_constant<int, 128>());
    case 256:
      return f(std::integral_constant<int, 256>());
    default:
      ERL_CHECK(false, "cuda::" << op << ": head size " << HS << " (supported: 64, 128, 256)");
  }
}

}  // namespace erlangshen::cuda
