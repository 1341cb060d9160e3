// Raw text -> training tokens: sentence splitting, jieba-compatible segmentation, BERT tokenization aligned to
// the words (word_start), and knowledge spans mapped from characters to tokens.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "data_pipeline/lexicon.h"
#include "data_pipeline/segmenter.h"
#include "data_pipeline/tokenizer.h"

namespace erlangshen::data {

// One processed sentence (or line, for `erlangshen tokenize`).
struct SentenceTokens {
  std::vector<uint32_t> word_ends;   // (W) segmenter word end offsets, code points
  Encoding enc;                      // (T) ids, start offsets, first-piece flags
  std::vector<uint8_t> word_start;   // (T) 1 where a segmenter word begins
  std::vector<int32_t> spans;        // (K, 3) token begin, token end (exclusive), kind
  void clear() { word_ends.clear(), enc.clear(), word_start.clear(), spans.clear(); }
};

// A document as stored in a shard (all offsets relative to the document).
struct TokenizedDoc {
  std::vector<int32_t> tokens;         // (T)
  std::vector<uint8_t> word_start;     // (T)
  std::vector<int64_t> sentence_ends;  // (S) token end offset of each sentence
  std::vector<int32_t> spans;          // (K, 3) token begin, end, kind
};

struct TextStats {
  int64_t documents = 0, empty_documents = 0, one_sentence_documents = 0;
  int64_t lines = 0, sentences = 0, tokens = 0, unk_tokens = 0, words = 0, bytes = 0;
  int64_t invalid_utf8 = 0, invalid_utf8_lines = 0, long_lines = 0;
  int64_t span_count[3] = {0, 0, 0};   // by SpanKind
  int64_t span_tokens[3] = {0, 0, 0};  // tokens covered, by SpanKind
  void add(const TextStats& o);
};

class TextProcessor {
 public:
  TextProcessor(const BertTokenizer& tokenizer, const Segmenter& segmenter, const LexiconMatcher& lexicon)
      : tok_(tokenizer), seg_(segmenter), lex_(lexicon) {}

  // Processes one text unit (no sentence splitting).
  void process_text(std::u32string_view text, SentenceTokens& out) const;
  // Processes a document given as paragraph lines (already decoded); appends to `doc`, updates `stats`.
  void process_document(const std::vector<std::u32string>& lines, TokenizedDoc& doc, TextStats& stats) const;

  const BertTokenizer& tokenizer() const { return tok_; }
  const Segmenter& segmenter() const { return seg_; }
  const LexiconMatcher& lexicon() const { return lex_; }

 private:
  const BertTokenizer& tok_;
  const Segmenter& seg_;
  const LexiconMatcher& lex_;
};

}  // namespace erlangshen::data
