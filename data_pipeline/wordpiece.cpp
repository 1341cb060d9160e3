#include "data_pipeline/wordpiece.h"

#include "data_pipeline/utf8.h"

namespace erlangshen::data {

int WordPiece::encode(std::u32string_view word, std::vector<int32_t>& ids) const {
  const size_t n = word.size();
  if (n == 0) return 0;
  if (n > static_cast<size_t>(max_chars_)) {
    ids.push_back(vocab_.unk_id());
    return 1;
  }
  if (n == 1) {  // the common case for Chinese text
    int32_t id = vocab_.find_char(word[0], false);
    ids.push_back(id >= 0 ? id : vocab_.unk_id());
    return 1;
  }
  // UTF-8 of the word with the byte offset of each code point, so candidates are substrings.
  thread_local std::string utf8;
  thread_local std::vector<uint32_t> off;  // (n+1) byte offset of code point i
  thread_local std::string cand;
  utf8.clear();
  off.clear();
  for (char32_t c : word) {
    off.push_back(static_cast<uint32_t>(utf8.size()));
    append_utf8(c, utf8);
  }
  off.push_back(static_cast<uint32_t>(utf8.size()));
  const size_t first = ids.size();
  const size_t max_piece = static_cast<size_t>(vocab_.max_token_chars());
  size_t start = 0;
  while (start < n) {
    int32_t found = -1;
    size_t end = std::min(n, start + max_piece);
    for (; end > start; --end) {
      int32_t id;
      if (end - start == 1) {
        id = vocab_.find_char(word[start], start > 0);
      } else if (start == 0) {
        id = vocab_.find(std::string_view(utf8.data(), off[end]));
      } else {
        cand.assign("##");
        cand.append(utf8, off[start], off[end] - off[start]);
        id = vocab_.find(cand);
      }
      if (id >= 0) {
        found = id;
        break;
      }
    }
    if (found < 0) {
      ids.resize(first);
      ids.push_back(vocab_.unk_id());
      return 1;
    }
    ids.push_back(found);
    start = end;
  }
  return static_cast<int>(ids.size() - first);
}

}  // namespace erlangshen::data
