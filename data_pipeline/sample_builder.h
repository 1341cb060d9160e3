// Sentence-order-prediction samples (Megatron/ALBERT style, DESIGN §4).
//
// Chunking (fixed per corpus and seed): each document's sentences are grouped greedily into chunks that reach a
// target length of seq_len - 3 tokens, or with probability short_seq_prob a target drawn uniformly from
// [2, seq_len - 3]; draws come from Philox keyed by (seed, Sampling, step 0, site 1) at (shard, document).
//
// Building (fresh every epoch, keyed by (seed, Sampling, epoch, site 2) at the sample id): a chunk of >= 2
// sentences splits at a random sentence boundary into A and B; a one-sentence chunk splits at a random word
// boundary. The pair is truncated to seq_len - 3 tokens by removing tokens from a random end of the longer
// segment, swapped with p = 0.5 (SOP label 1), and laid out as [CLS] A [SEP] B [SEP].
#pragma once
#include <cstdint>
#include <vector>

#include "data_pipeline/masker.h"
#include "data_pipeline/philox_stream.h"
#include "data_pipeline/shard_reader.h"

namespace erlangshen::data {

struct SampleRef {
  int64_t sent_begin;  // first sentence (shard-global index)
  int32_t n_sent;      // sentences in the chunk
  int32_t doc;         // document within the shard
};

struct ChunkOptions {
  int seq_len = 128;
  double short_seq_prob = 0.1;
  bool one_sentence_docs = true;  // false: documents of one sentence give no samples
  uint64_t seed = 0;
};

struct ShardChunks {
  std::vector<SampleRef> samples;           // (N) in document order
  std::vector<int64_t> doc_sample_offsets;  // (D+1)
  int64_t skipped_one_sentence_docs = 0, skipped_tiny_chunks = 0;
};

// Chunks every document of a shard given its index arrays.
ShardChunks chunk_shard(const std::vector<int64_t>& sentence_offsets, const std::vector<int64_t>& doc_offsets,
                        uint32_t shard_ordinal, const ChunkOptions& options);

struct BuiltSample {
  SampleTokens tokens;    // before masking
  std::vector<int32_t> token_types;  // (L)
  int32_t sop_label = 0;  // 1 = swapped
};

// Reads the chunk's tokens, word starts and spans from `reader` and builds the sample.
void build_sample(const ShardReader& reader, const std::vector<int32_t>& span_begins, const SampleRef& ref,
                  int seq_len, const Vocab& vocab, PhiloxStream& rng, BuiltSample& out);

}  // namespace erlangshen::data
