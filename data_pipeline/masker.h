// Dynamic masking of one sample (DESIGN §4). Budget: round(mask_prob x real tokens), stochastically rounded so
// the expected masked share is exactly mask_prob.
//   kdm:   whole knowledge spans in random order while they fit in knowledge_share of the budget (the last,
//          shortest non-fitting span is taken with probability remaining / length, so the expected knowledge
//          share equals knowledge_share wherever the sample has enough spans), then
//          whole-word n-grams (n <= max_ngram, p(n) ∝ 1/n, never across [SEP]) in random order until the budget
//          is met; an n-gram that would overshoot is shortened, one that touches a masked token is skipped.
//   wwm:   kdm with knowledge_share = 0.
//   token: single tokens in random order.
// Each chosen token becomes [MASK] (80%), a random non-special token (10%) or stays (10%).
// All draws come from one PhiloxStream keyed by (seed, Masking, epoch) at the sample id.
#pragma once
#include <algorithm>
#include <cstdint>
#include <iterator>
#include <string>
#include <vector>

#include "data_pipeline/philox_stream.h"
#include "data_pipeline/vocab.h"

namespace erlangshen::data {

enum class MaskMode { Kdm, Wwm, Token };
MaskMode parse_mask_mode(const std::string& s);

struct MaskOptions {
  double mask_prob = 0.15;
  double knowledge_share = 0.5;
  MaskMode mode = MaskMode::Kdm;
  int max_ngram = 3;
};

// A built sample before masking.
struct SampleTokens {
  std::vector<int32_t> ids;          // (L) [CLS] A [SEP] B [SEP]
  std::vector<uint8_t> word_start;   // (L) 1 where a word begins (0 on specials)
  std::vector<uint8_t> special;      // (L) 1 on [CLS]/[SEP]
  std::vector<int32_t> spans;        // (K, 3) knowledge spans within the sample: begin, end, kind
};

// One masked unit: a knowledge span (kind 1/2) or an n-gram of n words (kind 0; token mode: n = 1).
struct MaskedUnit {
  int32_t begin, end;
  uint8_t kind;
  uint8_t n_drawn, n;  // n-gram length drawn and used (after shortening to fit the budget)
};

struct MaskResult {
  std::vector<int32_t> positions;  // (M) ascending
  std::vector<int32_t> labels;     // (M) original ids
  std::vector<uint8_t> knowledge;  // (M) 1 when the position came from a knowledge span
  std::vector<MaskedUnit> units;   // in the order chosen
  int32_t budget = 0;
  int32_t ngram_drawn[17] = {};    // n-gram lengths drawn (including candidates then skipped), by n
  void clear() {
    positions.clear(), labels.clear(), knowledge.clear(), units.clear(), budget = 0;
    std::fill(std::begin(ngram_drawn), std::end(ngram_drawn), 0);
  }
};

class Masker {
 public:
  Masker(const Vocab& vocab, MaskOptions options);
  // Masks `s.ids` in place.
  void mask(SampleTokens& s, PhiloxStream& rng, MaskResult& out) const;
  const MaskOptions& options() const { return opt_; }

 private:
  const Vocab& vocab_;
  MaskOptions opt_;
  double ngram_cdf_[16];  // cumulative p(n) ∝ 1/n
};

}  // namespace erlangshen::data
