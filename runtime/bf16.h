// bfloat16 storage on the host and in backend interfaces: 1 sign, 8 exponent and 7 mantissa bits, the top half of
// an IEEE fp32. Used for activations stored in bf16 (train.activations=bf16, runtime/act.h); all arithmetic is in
// fp32. Plain C++ (no CUDA headers): the CUDA backend reinterprets bf16* as __nv_bfloat16*, same layout.
#pragma once
#include <cstdint>
#include <cstring>

namespace erlangshen {

struct bf16 {
  uint16_t bits = 0;
};
static_assert(sizeof(bf16) == 2, "bf16 must be 2 bytes (it is reinterpreted as __nv_bfloat16 on the device)");

// Round to nearest, ties to even (what __float2bfloat16_rn does); NaN stays a quiet NaN of the same sign.
inline bf16 to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu) != 0) return bf16{static_cast<uint16_t>((u >> 16) | 0x40)};
  u += 0x7fffu + ((u >> 16) & 1u);
  return bf16{static_cast<uint16_t>(u >> 16)};
}

inline float to_float(bf16 h) {
  const uint32_t u = static_cast<uint32_t>(h.bits) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// x rounded to the nearest bf16 value, as a float (bf16 x bf16 products are exact in fp32: 8 x 8 mantissa bits).
inline float round_to_bf16(float x) { return to_float(to_bf16(x)); }

}  // namespace erlangshen
