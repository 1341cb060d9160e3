// WordPiece vocabulary (`vocab.txt`): one token per line, id = line number - 1. Lines are split on '\n' only,
// so entries such as U+2028 (present in Google's Chinese vocab) keep their ids.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace erlangshen::data {

class Vocab {
 public:
  // Throws Error naming the file when it is missing, empty, or lacks a required special token.
  static Vocab load(const std::string& path);
  static Vocab from_tokens(std::vector<std::string> tokens, std::string name = "<memory>");

  int32_t size() const { return static_cast<int32_t>(tokens_.size()); }
  // Id of `token`, or -1.
  int32_t find(std::string_view token) const {
    auto it = index_.find(token);
    return it == index_.end() ? -1 : it->second;
  }
  // Id of the single code point `c` ("c"), or of "##c" when `continuation`; -1 when absent.
  int32_t find_char(char32_t c, bool continuation) const;
  const std::string& token(int32_t id) const { return tokens_.at(static_cast<size_t>(id)); }

  int32_t pad_id() const { return pad_; }
  int32_t unk_id() const { return unk_; }
  int32_t cls_id() const { return cls_; }
  int32_t sep_id() const { return sep_; }
  int32_t mask_id() const { return mask_; }
  // True for [PAD]/[UNK]/[CLS]/[SEP]/[MASK] and bracketed reserved entries like [unused7].
  bool is_special(int32_t id) const { return special_.at(static_cast<size_t>(id)) != 0; }
  // Ids a masked token may be replaced with (every non-special entry), for the 10% random replacement.
  const std::vector<int32_t>& replacement_ids() const { return replacement_ids_; }
  // Longest entry in code points (bounds WordPiece's search).
  int max_token_chars() const { return max_chars_; }

  const std::string& sha256() const { return sha256_; }  // of the file's bytes (or of the joined tokens)
  const std::string& name() const { return name_; }

 private:
  void build(std::string name);
  std::vector<std::string> tokens_;
  std::unordered_map<std::string_view, int32_t> index_;  // views into tokens_
  std::vector<int32_t> char_ids_;                        // (0x10000, 2) BMP single-char ids: plain, "##"
  std::unordered_map<char32_t, int32_t> astral_ids_;     // key = cp * 2 + continuation
  std::vector<uint8_t> special_;
  std::vector<int32_t> replacement_ids_;
  int32_t pad_ = -1, unk_ = -1, cls_ = -1, sep_ = -1, mask_ = -1;
  int max_chars_ = 1;
  std::string sha256_, name_;
};

}  // namespace erlangshen::data
