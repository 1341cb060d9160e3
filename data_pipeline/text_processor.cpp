#include "data_pipeline/text_processor.h"

#include <algorithm>

#include "data_pipeline/sentence_splitter.h"

namespace erlangshen::data {

void TextStats::add(const TextStats& o) {
  documents += o.documents, empty_documents += o.empty_documents, one_sentence_documents += o.one_sentence_documents;
  lines += o.lines, sentences += o.sentences, tokens += o.tokens, unk_tokens += o.unk_tokens, words += o.words;
  bytes += o.bytes, invalid_utf8 += o.invalid_utf8, invalid_utf8_lines += o.invalid_utf8_lines;
  long_lines += o.long_lines;
  for (int k = 0; k < 3; ++k) span_count[k] += o.span_count[k], span_tokens[k] += o.span_tokens[k];
}

void TextProcessor::process_text(std::u32string_view text, SentenceTokens& out) const {
  out.clear();
  seg_.cut(text, out.word_ends);
  tok_.encode(text, out.enc);
  const size_t T = out.enc.ids.size();
  // A token begins a word when it is the first WordPiece of a basic token that starts on a word boundary.
  out.word_start.assign(T, 0);
  size_t w = 0;  // boundaries: 0, word_ends[0], word_ends[1], ...
  for (size_t t = 0; t < T; ++t) {
    uint32_t s = out.enc.starts[t];
    while (w < out.word_ends.size() && out.word_ends[w] < s) ++w;
    bool boundary = s == 0 || (w < out.word_ends.size() && out.word_ends[w] == s);
    out.word_start[t] = (out.enc.first_piece[t] && boundary) ? 1 : 0;
  }
  if (T > 0) out.word_start[0] = 1;
  if (lex_.empty() || T == 0) return;
  thread_local std::vector<CharSpan> char_spans;
  char_spans.clear();
  lex_.match(text, out.word_ends, char_spans);
  // Map character spans to token spans that begin and end on token word boundaries.
  size_t t = 0;
  for (const CharSpan& cs : char_spans) {
    while (t < T && out.enc.starts[t] < cs.begin) ++t;
    if (t == T) break;
    if (out.enc.starts[t] != cs.begin || !out.word_start[t]) continue;
    size_t e = t;
    while (e < T && out.enc.starts[e] < cs.end) ++e;
    if (e == t || (e < T && !out.word_start[e])) continue;
    out.spans.push_back(static_cast<int32_t>(t));
    out.spans.push_back(static_cast<int32_t>(e));
    out.spans.push_back(static_cast<int32_t>(cs.kind));
    t = e;
  }
}

void TextProcessor::process_document(const std::vector<std::u32string>& lines, TokenizedDoc& doc,
                                     TextStats& stats) const {
  thread_local std::vector<std::pair<uint32_t, uint32_t>> sentences;
  thread_local SentenceTokens st;
  const int32_t unk = tok_.vocab().unk_id();
  size_t doc_sentences = 0;
  for (const std::u32string& line : lines) {
    sentences.clear();
    split_sentences(line, sentences);
    for (auto [b, e] : sentences) {
      process_text(std::u32string_view(line).substr(b, e - b), st);
      const size_t T = st.enc.ids.size();
      if (T == 0) continue;
      const int32_t base = static_cast<int32_t>(doc.tokens.size());
      doc.tokens.insert(doc.tokens.end(), st.enc.ids.begin(), st.enc.ids.end());
      doc.word_start.insert(doc.word_start.end(), st.word_start.begin(), st.word_start.end());
      doc.sentence_ends.push_back(static_cast<int64_t>(doc.tokens.size()));
      for (size_t k = 0; k < st.spans.size(); k += 3) {
        doc.spans.push_back(base + st.spans[k]);
        doc.spans.push_back(base + st.spans[k + 1]);
        doc.spans.push_back(st.spans[k + 2]);
        stats.span_count[st.spans[k + 2]] += 1;
        stats.span_tokens[st.spans[k + 2]] += st.spans[k + 1] - st.spans[k];
      }
      ++doc_sentences;
      stats.tokens += static_cast<int64_t>(T);
      stats.unk_tokens += std::count(st.enc.ids.begin(), st.enc.ids.end(), unk);
      stats.words += std::count(st.word_start.begin(), st.word_start.end(), 1);
    }
  }
  stats.sentences += static_cast<int64_t>(doc_sentences);
  if (doc_sentences == 0) ++stats.empty_documents;
  else ++stats.documents;
  if (doc_sentences == 1) ++stats.one_sentence_documents;
}

}  // namespace erlangshen::data
