// Synthetic pretraining batches (random tokens, 15% masked positions, random SOP labels), drawn from Philox
// by (seed, step, sample id): for benchmarks and tests that must not depend on a corpus.
#pragma once
#include <cstdint>

#include "data_pipeline/batch.h"

namespace erlangshen {

// B samples of T tokens with ids in [first_id, vocab); lengths vary in [T/2, T] unless full_length.
// sample_base: global id of sample 0 (so two layouts slicing the same step draw the same samples).
PretrainBatch make_synthetic_batch(int B, int T, int vocab, double mask_prob, uint64_t seed, int64_t step,
                                   int64_t sample_base, bool full_length = false);

}  // namespace erlangshen
