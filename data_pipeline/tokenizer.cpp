#include "data_pipeline/tokenizer.h"

#include <algorithm>

#include "data_pipeline/utf8.h"

namespace erlangshen::data {

namespace {
// str.split() in Python also splits on the line/paragraph separators, which are neither Zs nor controls.
inline bool splits_words(const CharTable& t, char32_t c) { return t.is_whitespace(c) || c == 0x2028 || c == 0x2029; }
}  // namespace

BertTokenizer::BertTokenizer(std::shared_ptr<const Vocab> vocab, bool lowercase)
    : vocab_(std::move(vocab)), lowercase_(lowercase), chars_(CharTable::get()), wordpiece_(*vocab_) {}

BertTokenizer BertTokenizer::from_file(const std::string& vocab_path, bool lowercase) {
  return BertTokenizer(std::make_shared<const Vocab>(Vocab::load(vocab_path)), lowercase);
}

template <typename Sink>
void BertTokenizer::for_each_basic_token(std::u32string_view text, Sink&& sink) const {
  // Cleaning (drop controls, whitespace -> space) and CJK splitting only decide token boundaries here:
  // scan for maximal runs of kept, non-space, non-CJK characters; every CJK character is a token of its own.
  thread_local std::u32string word;        // cleaned characters of the current whitespace token
  thread_local std::vector<uint32_t> pos;  // (word.size()) input offset of each
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    char32_t c = text[i];
    uint8_t f = chars_.flags(c);
    if ((f & kControl) || splits_words(chars_, c)) {
      ++i;
      continue;
    }
    if (f & kCjk) {  // never lowercased or split further
      sink(text.substr(i, 1), static_cast<uint32_t>(i));
      ++i;
      continue;
    }
    word.clear();
    pos.clear();
    for (; i < n; ++i) {
      c = text[i];
      f = chars_.flags(c);
      if (f & kControl) continue;  // removed by cleaning: does not break the token
      if ((f & kCjk) || splits_words(chars_, c)) break;
      word.push_back(c);
      pos.push_back(static_cast<uint32_t>(i));
    }
    split_word(word, pos, sink);
  }
}

template <typename Sink>
void BertTokenizer::split_word(std::u32string_view w, const std::vector<uint32_t>& pos, Sink&& sink) const {
  thread_local std::u32string norm;             // lowercased / accent-stripped characters
  thread_local std::vector<uint32_t> norm_pos;  // (norm.size()) input offset each came from
  norm.clear();
  norm_pos.clear();
  const size_t n = w.size();
  if (lowercase_) {
    for (size_t k = 0; k < n; ++k) {
      char32_t c = w[k];
      bool final_sigma = false;
      if (c == 0x3A3) {  // Python's Final_Sigma rule: preceded by a cased letter and not followed by one
        auto cased_neighbour = [&](long step) {
          for (long j = static_cast<long>(k) + step; j >= 0 && j < static_cast<long>(n); j += step) {
            uint8_t g = chars_.flags(w[static_cast<size_t>(j)]);
            if (g & kCaseIgnorable) continue;
            return (g & kCased) != 0;
          }
          return false;
        };
        final_sigma = cased_neighbour(-1) && !cased_neighbour(+1);
      }
      size_t before = norm.size();
      chars_.append_lower_stripped(c, final_sigma, norm);
      norm_pos.insert(norm_pos.end(), norm.size() - before, pos[k]);
    }
  } else {
    norm.assign(w);
    norm_pos.assign(pos.begin(), pos.end());
  }
  auto emit = [&](size_t pb, size_t pe) {
    if (pe > pb) sink(std::u32string_view(norm).substr(pb, pe - pb), norm_pos[pb]);
  };
  // Punctuation split: every punctuation character is a piece of its own.
  const size_t m = norm.size();
  size_t s = 0;
  for (size_t k = 0; k < m; ++k) {
    if (chars_.is_punctuation(norm[k])) {
      emit(s, k);
      emit(k, k + 1);
      s = k + 1;
    }
  }
  emit(s, m);
}

void BertTokenizer::encode(std::u32string_view text, Encoding& out, uint32_t offset_base) const {
  for_each_basic_token(text, [&](std::u32string_view piece, uint32_t start) {
    size_t before = out.ids.size();
    wordpiece_.encode(piece, out.ids);
    for (size_t t = before; t < out.ids.size(); ++t) {
      out.starts.push_back(offset_base + start);
      out.first_piece.push_back(t == before ? 1 : 0);
    }
  });
}

void BertTokenizer::basic_tokenize(std::u32string_view text, std::vector<std::u32string>& pieces,
                                   std::vector<uint32_t>* starts) const {
  for_each_basic_token(text, [&](std::u32string_view piece, uint32_t start) {
    pieces.emplace_back(piece);
    if (starts) starts->push_back(start);
  });
}

std::vector<int32_t> BertTokenizer::encode(std::string_view utf8) const {
  std::u32string cps;
  decode_utf8(utf8, cps);
  Encoding e;
  encode(cps, e);
  return e.ids;
}

std::vector<std::string> BertTokenizer::tokenize(std::string_view utf8) const {
  std::vector<std::string> out;
  for (int32_t id : encode(utf8)) out.push_back(vocab_->token(id));
  return out;
}

PairEncoding BertTokenizer::encode_pair(std::string_view a, std::string_view b, int max_len) const {
  std::vector<int32_t> ta = encode(a), tb = encode(b);
  const size_t budget = max_len > 3 ? static_cast<size_t>(max_len - 3) : 0;
  while (ta.size() + tb.size() > budget) {  // HF "longest_first": trim the longer one from its end
    if (ta.size() > tb.size()) ta.pop_back();
    else tb.pop_back();
  }
  PairEncoding p;
  p.ids.push_back(vocab_->cls_id());
  p.ids.insert(p.ids.end(), ta.begin(), ta.end());
  p.ids.push_back(vocab_->sep_id());
  p.token_types.assign(p.ids.size(), 0);
  p.ids.insert(p.ids.end(), tb.begin(), tb.end());
  p.ids.push_back(vocab_->sep_id());
  p.token_types.resize(p.ids.size(), 1);
  return p;
}

}  // namespace erlangshen::data
