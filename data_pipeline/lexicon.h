// Knowledge lexicons for knowledge-based dynamic masking: entity and event terms, matched over word
// boundaries of a segmented text, longest match first, left to right.
//
// Sources: term lists (one term per line; anything after a tab is ignored; '#' comment lines allowed) of a
// given kind, and the POS tags of jieba's dictionary (by default nr/ns/nt/nz -> entity, v/vn of >= 2
// characters -> event). A term belonging to both kinds counts as an entity.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "data_pipeline/prefix_trie.h"

namespace erlangshen::data {

enum class SpanKind : int32_t { None = 0, Entity = 1, Event = 2 };
const char* span_kind_name(SpanKind k);

// A matched term: code points [begin, end) of the text.
struct CharSpan {
  uint32_t begin, end;
  SpanKind kind;
};

struct PosRules {
  std::vector<std::string> entity_tags{"nr", "ns", "nt", "nz"};
  std::vector<std::string> event_tags{"v", "vn"};
  int min_chars = 2;  // shorter words / terms are not knowledge spans
};

class LexiconMatcher {
 public:
  explicit LexiconMatcher(PosRules rules = {}) : rules_(std::move(rules)) {}
  // `spec` is "FILE", "entity:FILE" or "event:FILE" (a bare FILE is an entity list).
  void add_spec(const std::string& spec);
  void add_file(const std::string& path, SpanKind kind);
  void add_dict_pos(const std::string& jieba_dict_path);
  void add_term(std::u32string_view term, SpanKind kind);

  // word_ends: end offset of each word of `text` (as Segmenter::cut produces). Appends matched spans,
  // ascending and non-overlapping, each starting and ending on a word boundary.
  void match(std::u32string_view text, const std::vector<uint32_t>& word_ends, std::vector<CharSpan>& out) const;

  size_t num_terms() const { return num_terms_; }
  bool empty() const { return num_terms_ == 0; }
  const std::string& sha256() const { return sha256_; }  // fingerprint of the sources and rules

 private:
  void insert_term(std::u32string_view term, SpanKind kind);
  void freeze();  // rebuilds dat_ from trie_

  PrefixTrie trie_;      // payload tag: SpanKind of the term ending at the node, 0 if none
  DoubleArrayTrie dat_;  // read-only copy used by match (same tags)
  PosRules rules_;
  size_t num_terms_ = 0;
  std::string sha256_;
};

}  // namespace erlangshen::data
