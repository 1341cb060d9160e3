// BERT tokenizer: basic tokenization (Google's tokenization.py BasicTokenizer: text cleaning, CJK characters
// split, whitespace split, optional lowercase + accent stripping, punctuation split) followed by WordPiece.
// Every token records the code-point offset of the first input character it came from, so callers can align
// tokens with other segmentations (whole-word masking).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "data_pipeline/unicode_props.h"
#include "data_pipeline/vocab.h"
#include "data_pipeline/wordpiece.h"

namespace erlangshen::data {

// Tokens of one text; appended to by BertTokenizer::encode.
struct Encoding {
  std::vector<int32_t> ids;      // (N) WordPiece ids
  std::vector<uint32_t> starts;  // (N) code-point offset in the input of the basic token a piece belongs to
  std::vector<uint8_t> first_piece;  // (N) 1 on the first WordPiece of a basic token, 0 on "##" continuations
  void clear() { ids.clear(), starts.clear(), first_piece.clear(); }
};

// `[CLS] a [SEP] b [SEP]` for sentence-pair tasks.
struct PairEncoding {
  std::vector<int32_t> ids;          // (L)
  std::vector<int32_t> token_types;  // (L) 0 for [CLS] a [SEP], 1 for b [SEP]
};

class BertTokenizer {
 public:
  BertTokenizer(std::shared_ptr<const Vocab> vocab, bool lowercase);
  // Loads `vocab_path` (throws Error naming it when missing/empty/malformed).
  static BertTokenizer from_file(const std::string& vocab_path, bool lowercase);

  // Tokenizes code points; appends to `out`. Offsets are relative to `text` plus `offset_base`.
  void encode(std::u32string_view text, Encoding& out, uint32_t offset_base = 0) const;
  // Basic tokens (before WordPiece) with the input offset of each, for vocabulary building.
  void basic_tokenize(std::u32string_view text, std::vector<std::u32string>& pieces,
                      std::vector<uint32_t>* starts = nullptr) const;
  // Convenience: UTF-8 in (invalid bytes become U+FFFD, which cleaning removes), ids / token strings out.
  std::vector<int32_t> encode(std::string_view utf8) const;
  std::vector<std::string> tokenize(std::string_view utf8) const;
  // `[CLS] a [SEP] b [SEP]` truncated to `max_len` by removing tokens from the end of the longer segment.
  PairEncoding encode_pair(std::string_view a, std::string_view b, int max_len) const;

  const Vocab& vocab() const { return *vocab_; }
  std::shared_ptr<const Vocab> vocab_ptr() const { return vocab_; }
  const std::string& vocab_sha256() const { return vocab_->sha256(); }
  bool lowercase() const { return lowercase_; }

 private:
  // Lowercases / strips one whitespace-delimited token `w` (cleaned characters; pos[i] = input offset of w[i]),
  // splits it on punctuation and appends the WordPieces of each piece.
  // `sink(piece, input_offset)` receives every basic token in order.
  template <typename Sink>
  void for_each_basic_token(std::u32string_view text, Sink&& sink) const;
  template <typename Sink>
  void split_word(std::u32string_view w, const std::vector<uint32_t>& pos, Sink&& sink) const;
  std::shared_ptr<const Vocab> vocab_;
  bool lowercase_;
  const CharTable& chars_;
  WordPiece wordpiece_;
};

}  // namespace erlangshen::data
