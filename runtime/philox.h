// Counter-based randomness keyed by global coordinates (DESIGN §2).
//
// A draw is philox4x32-10(key, counter). The key is derived from the *purpose* of the draw:
//   key = first two words of philox4x32-10(seed key, {purpose, step, layer, site})
// and the counter is the element's global index (sample id in the global batch, head / feature index in the
// unsharded tensor, position). No draw depends on which rank, thread or device computes it, so every TP x DP
// layout, CPU and GPU, and resumed vs uninterrupted runs see the same bits.
#pragma once
#include <Random123/philox.h>

#include <cstdint>

#if defined(__CUDACC__)
#define ERL_HD __host__ __device__ __forceinline__
#else
#define ERL_HD inline
#endif

namespace erlangshen {

// What a stream of random numbers is for; part of the key so purposes never share bits.
enum class RngPurpose : uint32_t {
  Init = 1,             // weight initialisation (site = parameter index in the table)
  EmbeddingDropout = 2,
  AttentionDropout = 3,
  HiddenDropout = 4,    // after attention-out and FFN-out (site 0 / 1)
  ClassifierDropout = 5,
  Masking = 6,          // data pipeline: dynamic masking
  Sampling = 7,         // data pipeline: sample construction (split point, SOP swap, truncation)
  Shuffle = 8,          // data pipeline: shard / document permutation
  Test = 99,
};

struct PhiloxKey {
  uint32_t k0 = 0, k1 = 0;
};

struct Philox4 {
  uint32_t v[4];
};

ERL_HD Philox4 philox_block(PhiloxKey key, uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3) {
  r123::Philox4x32 gen;
  r123::Philox4x32::ctr_type ctr = {{c0, c1, c2, c3}};
  r123::Philox4x32::key_type k = {{key.k0, key.k1}};
  r123::Philox4x32::ctr_type r = gen(ctr, k);
  return Philox4{{r.v[0], r.v[1], r.v[2], r.v[3]}};
}

// Derive the key of one random stream from (seed, purpose, step, layer, site).
ERL_HD PhiloxKey derive_key(uint64_t seed, RngPurpose purpose, uint64_t step, uint32_t layer, uint32_t site) {
  PhiloxKey seed_key{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)};
  uint32_t step_lo = static_cast<uint32_t>(step);
  uint32_t step_hi_and_purpose = (static_cast<uint32_t>(step >> 32) & 0xFFFFu) | (static_cast<uint32_t>(purpose) << 16);
  Philox4 r = philox_block(seed_key, step_hi_and_purpose, step_lo, layer, site);
  return PhiloxKey{r.v[0] ^ r.v[2], r.v[1] ^ r.v[3]};
}

// Uniform in [0, 1) with 24 bits of precision (exactly representable in float).
ERL_HD float uniform_from_bits(uint32_t bits) { return static_cast<float>(bits >> 8) * (1.0f / 16777216.0f); }

// 4 uniforms for the 64-bit global index `index` (counter = {index lo, index hi, sub, 0}).
ERL_HD Philox4 philox_at(PhiloxKey key, uint64_t index, uint32_t sub = 0) {
  return philox_block(key, static_cast<uint32_t>(index), static_cast<uint32_t>(index >> 32), sub, 0);
}

// Dropout keep decision for element `index` of a stream: element i uses word (i % 4) of draw (i / 4).
// Keeps with probability 1 - p. Threshold compare on 32 bits.
ERL_HD uint32_t dropout_threshold(float p) {
  double t = static_cast<double>(p) * 4294967296.0;
  return t >= 4294967295.0 ? 0xFFFFFFFFu : static_cast<uint32_t>(t);
}

ERL_HD bool dropout_keep(PhiloxKey key, uint64_t index, uint32_t threshold) {
  Philox4 r = philox_at(key, index >> 2);
  return r.v[index & 3] >= threshold;
}

// Key + probability of one dropout site; p == 0 means identity.
// keep_mask (optional, CPU backend): forward stores each element's keep decision there (1 byte per element, laid out
// like the tensor it drops) and backward reads it back instead of redrawing Philox. The bits are the same either
// way; it trades one byte per element for the redraw. The CUDA backend ignores it and redraws.
struct DropoutSpec {
  PhiloxKey key;
  float p = 0.0f;
  uint8_t* keep_mask = nullptr;
};

}  // namespace erlangshen
