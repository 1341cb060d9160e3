// Greedy longest-match-first WordPiece (Google BERT `WordpieceTokenizer`): a word is split into the longest
// vocabulary prefix, then the longest "##"-prefixed piece, and so on; a word with any unmatchable remainder, or
// longer than `max_input_chars` code points, becomes a single [UNK].
//
// The longest match is one walk of a double-array trie over the vocabulary's code points (one trie for
// word-initial pieces, one for "##" continuations without the "##"); a repeated entry maps to its last line,
// as Vocab::find does.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "data_pipeline/prefix_trie.h"
#include "data_pipeline/vocab.h"

namespace erlangshen::data {

class WordPiece {
 public:
  explicit WordPiece(const Vocab& vocab, int max_input_chars = 100);
  // Appends the ids of `word`'s pieces to `ids`; returns the number appended (>= 1 for a non-empty word).
  int encode(std::u32string_view word, std::vector<int32_t>& ids) const;

 private:
  const Vocab& vocab_;
  int max_chars_;
  DoubleArrayTrie initial_;       // every entry; tag 1 on an entry's node, weight = its id
  DoubleArrayTrie continuation_;  // entries "##x..." keyed by "x..."
};

}  // namespace erlangshen::data
