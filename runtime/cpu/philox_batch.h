// Philox4x32-10 over runs of consecutive counters, written as a plain loop over lanes so the compiler
// vectorises it (32x32->64-bit multiplies map to vpmuludq). Bit-identical to runtime/philox.h's
// philox_at(key, block) for block = first_block + i (counter {lo, hi, 0, 0}); the tests check it.
#pragma once
#include <cstdint>

#include "runtime/philox.h"

namespace erlangshen::cpu {

// out[4*i + w] = word w of philox_at(key, first_block + i), for i in [0, n_blocks)
inline void philox_blocks(PhiloxKey key, uint64_t first_block, int n_blocks, uint32_t* out) {
  constexpr int kLanes = 16;
  for (int base = 0; base < n_blocks; base += kLanes) {
    const int lanes = n_blocks - base < kLanes ? n_blocks - base : kLanes;
    uint32_t c0[kLanes], c1[kLanes], c2[kLanes], c3[kLanes];
    for (int i = 0; i < kLanes; ++i) {
      const uint64_t block = first_block + static_cast<uint64_t>(base + i);
      c0[i] = static_cast<uint32_t>(block);
      c1[i] = static_cast<uint32_t>(block >> 32);
      c2[i] = 0;
      c3[i] = 0;
    }
    uint32_t k0 = key.k0, k1 = key.k1;
    for (int round = 0; round < 10; ++round) {
#pragma omp simd
      for (int i = 0; i < kLanes; ++i) {
        const uint64_t p0 = static_cast<uint64_t>(0xD2511F53u) * c0[i];
        const uint64_t p1 = static_cast<uint64_t>(0xCD9E8D57u) * c2[i];
        const uint32_t n0 = static_cast<uint32_t>(p1 >> 32) ^ c1[i] ^ k0;
        const uint32_t n2 = static_cast<uint32_t>(p0 >> 32) ^ c3[i] ^ k1;
        c1[i] = static_cast<uint32_t>(p1);
        c3[i] = static_cast<uint32_t>(p0);
        c0[i] = n0;
        c2[i] = n2;
      }
      k0 += 0x9E3779B9u;
      k1 += 0xBB67AE85u;
    }
    for (int i = 0; i < lanes; ++i) {
      uint32_t* o = out + 4 * (base + i);
      o[0] = c0[i];
      o[1] = c1[i];
      o[2] = c2[i];
      o[3] = c3[i];
    }
  }
}

// keep[i] = 1 when element (first_index + i) survives dropout with this threshold, for i in [0, n), n <= 4096.
inline void dropout_keep_mask(PhiloxKey key, uint64_t first_index, int n, uint32_t threshold, uint8_t* keep) {
  uint32_t bits[4 * 1026];
  const uint64_t first_block = first_index >> 2;
  const int skip = static_cast<int>(first_index & 3);
  const int n_blocks = (skip + n + 3) / 4;
  philox_blocks(key, first_block, n_blocks, bits);
#pragma omp simd
  for (int i = 0; i < n; ++i) keep[i] = bits[skip + i] >= threshold;
}

// Where the keep decisions of a run of elements come from (DropoutSpec::keep_mask): drawn into a scratch buffer;
// drawn and stored into the mask (forward); or read back from the mask (backward).
enum class MaskSource { Draw, DrawAndStore, Stored };

// Keep decisions of elements [first_index, first_index + n), n <= 4096: for DrawAndStore / Stored they are
// mask[at .. at + n) (mask unused, may be null, for Draw); `scratch` holds n bytes. Returns the n decisions.
inline const uint8_t* keep_decisions(PhiloxKey key, uint64_t first_index, int n, uint32_t threshold,
                                     MaskSource source, uint8_t* mask, int64_t at, uint8_t* scratch) {
  uint8_t* keep = source == MaskSource::Draw ? scratch : mask + at;
  if (source != MaskSource::Stored) dropout_keep_mask(key, first_index, n, threshold, keep);
  return keep;
}

}  // namespace erlangshen::cpu
