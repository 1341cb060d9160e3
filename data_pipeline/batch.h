// What the data pipeline hands to the model: one pretraining micro-batch of one DP rank.
#pragma once
#include <cstdint>
#include <vector>

namespace erlangshen {

struct PretrainBatch {
  int batch = 0;    // B samples
  int seq_len = 0;  // T (padded length; every row has T entries)
  std::vector<int32_t> input_ids;      // (B, T) after masking, padded with [PAD] = 0
  std::vector<int32_t> token_types;    // (B, T) 0 for [CLS] A [SEP], 1 for B [SEP], 0 on padding
  std::vector<uint8_t> attention_mask; // (B, T) 1 = real token, 0 = padding
  std::vector<int32_t> mlm_positions;  // (M) flat index b*T + t of each masked position, ascending
  std::vector<int32_t> mlm_labels;     // (M) original token id at that position
  std::vector<int32_t> sop_labels;     // (B) 1 = segments swapped, 0 = in order
  std::vector<int64_t> sample_ids;     // (B) global sample id (index in the epoch's sample order)
};

}  // namespace erlangshen
