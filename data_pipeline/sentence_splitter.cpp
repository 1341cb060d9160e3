#include "data_pipeline/sentence_splitter.h"

namespace erlangshen::data {

namespace {

inline bool is_terminator(char32_t c) {
  switch (c) {
    case U'。': case U'！': case U'？': case U'!': case U'?': case U'…': case U'．': case U'｡':
      return true;
    default:
      return false;
  }
}

inline bool is_closer(char32_t c) {
  switch (c) {
    case U'”': case U'’': case U'」': case U'』': case U'）': case U')': case U'】': case U'》': case U'〉':
    case U'"': case U'\'': case U'］': case U']': case U'〕': case U'｝': case U'}': case U'〗': case U'»':
      return true;
    default:
      return false;
  }
}

inline bool is_space(char32_t c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == 0x3000 || c == 0xA0 || (c >= 0x2000 && c <= 0x200B);
}

}  // namespace

void split_sentences(std::u32string_view text, std::vector<std::pair<uint32_t, uint32_t>>& out) {
  const size_t n = text.size();
  size_t begin = 0, i = 0;
  auto emit = [&](size_t end) {
    for (size_t k = begin; k < end; ++k) {
      if (!is_space(text[k])) {
        out.emplace_back(static_cast<uint32_t>(begin), static_cast<uint32_t>(end));
        break;
      }
    }
    begin = end;
  };
  while (i < n) {
    char32_t c = text[i];
    bool ends = is_terminator(c);
    if (c == '.') {  // Western full stop: only before whitespace or the end (not 3.14, not a.b.c)
      size_t j = i + 1;
      while (j < n && (text[j] == '.' || is_closer(text[j]))) ++j;
      ends = j == n || is_space(text[j]);
    }
    if (!ends) {
      ++i;
      continue;
    }
    size_t j = i + 1;
    while (j < n && (is_terminator(text[j]) || text[j] == '.')) ++j;  // "？！", "……", "..."
    while (j < n && is_closer(text[j])) ++j;
    while (j < n && is_space(text[j])) ++j;
    emit(j);
    i = j;
  }
  if (begin < n) emit(n);
}

}  // namespace erlangshen::data
