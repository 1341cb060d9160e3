// Chinese word segmenter compatible with jieba 0.42 `jieba.cut(text, HMM=False)`:
//   * the dictionary (`word freq [pos]` per line) defines FREQ over every word and all its prefixes;
//   * text is split into blocks of [\u4E00-\u9FD5a-zA-Z0-9+#&._%-]; outside them every character is a word
//     of its own (except "\r\n");
//   * inside a block, the DAG of dictionary words from each position is scored right to left,
//     route[i] = max over ends x of (log(freq(i..x)) - log(total) + route[x+1]), ties to the larger x;
//   * the route is followed left to right, and consecutive single ASCII letters/digits are merged.
// User dictionaries follow jieba's load_userdict/add_word (missing frequencies from suggest_freq).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "data_pipeline/prefix_trie.h"

namespace erlangshen::data {

class Segmenter {
 public:
  Segmenter() = default;
  // Loads jieba's main dictionary; throws Error naming file and line for a malformed entry.
  static Segmenter load(const std::string& dict_path);
  // jieba.load_userdict semantics (`word [freq] [tag]`, freq optional).
  void load_user_dict(const std::string& path);
  // jieba.add_word(word, freq) (freq < 0: suggest_freq as jieba does when it is omitted).
  void add_word(std::u32string_view word, int64_t freq);

  // Segments `text`; appends the end offset (exclusive, in code points) of each word to `word_ends`.
  void cut(std::u32string_view text, std::vector<uint32_t>& word_ends) const;
  // Words as UTF-8 strings (for tests and the tokenize command).
  std::vector<std::string> cut_utf8(std::string_view text) const;

  int64_t total() const { return total_; }
  size_t num_words() const { return num_words_; }
  const std::string& sha256() const { return sha256_; }  // fingerprint of the dictionary files

 private:
  void set_word(std::u32string_view word, int64_t freq);
  // add_word without rebuilding the double-array trie (cut then walks trie_ directly).
  void add_word_only(std::u32string_view word, int64_t freq);
  // Rebuilds dat_ from trie_ and freq_ (weights log(freq) - log(total)).
  void freeze();
  // cut of one [\u4E00-\u9FD5a-zA-Z0-9+#&._%-]+ block starting at `base` (no HMM).
  void cut_block(std::u32string_view block, uint32_t base, std::vector<uint32_t>& word_ends) const;

  PrefixTrie trie_;             // mutable form (insertions, lookups by word)
  DoubleArrayTrie dat_;         // read-only form used by cut: tag = freq > 0, weight = log(freq) - log(total)
  bool frozen_ = false;         // dat_ reflects trie_, freq_ and total_
  std::vector<int64_t> freq_;   // (nodes) frequency; 0 for prefixes that are not words
  int64_t total_ = 0;
  double log_total_ = 0;
  size_t num_words_ = 0;
  std::string sha256_;
};

}  // namespace erlangshen::data
