// Builds a WordPiece vocabulary from a corpus, for users (and the embedded demo) without one:
//   [PAD], [unused1..N], [UNK], [CLS], [SEP], [MASK]   (BERT's order of special tokens)
//   every character seen >= min_char_count times, most frequent first (CJK and others alike)
//   the "##" form of each of those characters
//   WordPiece pieces for non-CJK words, learned by merging the most frequent adjacent pieces
//   (WordPiece/BPE-style) up to `max_merges`.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace erlangshen::data {

struct VocabBuildOptions {
  std::vector<std::string> inputs;  // corpus files (documents separated by blank lines, or any text)
  bool lowercase = true;
  int unused = 99;                  // [unused1..N] reserved entries
  int64_t min_char_count = 1;
  int max_merges = 2000;            // learned multi-character pieces for non-CJK words
  int64_t min_merge_count = 2;
  size_t max_words = 20000;         // most frequent distinct non-CJK words considered for merges
};

std::vector<std::string> build_vocab(const VocabBuildOptions& options);

}  // namespace erlangshen::data
