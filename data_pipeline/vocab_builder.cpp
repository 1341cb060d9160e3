#include "data_pipeline/vocab_builder.h"

#include <algorithm>
#include <map>
#include <memory>
#include <unordered_map>

#include "data_pipeline/corpus_reader.h"
#include "data_pipeline/tokenizer.h"
#include "data_pipeline/utf8.h"

namespace erlangshen::data {

namespace {

struct Word {
  std::vector<std::string> pieces;  // current segmentation: "x", "##y", ...
  int64_t count = 0;
};

std::string join_pieces(const std::string& a, const std::string& b) {
  return a + (b.rfind("##", 0) == 0 ? b.substr(2) : b);
}

}  // namespace

std::vector<std::string> build_vocab(const VocabBuildOptions& o) {
  auto specials = std::make_shared<const Vocab>(Vocab::from_tokens({"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}));
  BertTokenizer basic(specials, o.lowercase);
  std::unordered_map<char32_t, int64_t> char_count;
  std::unordered_map<std::u32string, int64_t> word_count;  // non-CJK basic tokens of 2+ characters
  CorpusReader reader(o.inputs);
  RawDocument doc;
  std::u32string text;
  std::vector<std::u32string> pieces;
  const CharTable& chars = CharTable::get();
  while (reader.next(doc)) {
    for (const auto& line : doc.lines) {
      text.clear();
      decode_utf8(line, text);
      pieces.clear();
      basic.basic_tokenize(text, pieces);
      for (const auto& p : pieces) {
        for (char32_t c : p) ++char_count[c];
        if (p.size() >= 2 && !chars.is_cjk(p[0])) ++word_count[p];
      }
    }
  }
  std::vector<std::string> vocab = {"[PAD]"};
  for (int i = 1; i <= o.unused; ++i) vocab.push_back("[unused" + std::to_string(i) + "]");
  for (const char* s : {"[UNK]", "[CLS]", "[SEP]", "[MASK]"}) vocab.push_back(s);

  std::vector<std::pair<char32_t, int64_t>> cs(char_count.begin(), char_count.end());
  std::sort(cs.begin(), cs.end(), [](auto& a, auto& b) { return a.second != b.second ? a.second > b.second : a.first < b.first; });
  std::vector<std::string> singles;
  for (auto& [c, n] : cs) {
    if (n < o.min_char_count || c == '\n' || c == 0x2028) continue;
    singles.push_back(encode_utf8(std::u32string(1, c)));
  }
  vocab.insert(vocab.end(), singles.begin(), singles.end());
  for (auto& s : singles) vocab.push_back("##" + s);

  // Merges over the most frequent non-CJK words.
  std::vector<std::pair<std::u32string, int64_t>> ws(word_count.begin(), word_count.end());
  std::sort(ws.begin(), ws.end(), [](auto& a, auto& b) { return a.second != b.second ? a.second > b.second : a.first < b.first; });
  if (ws.size() > o.max_words) ws.resize(o.max_words);
  std::vector<Word> words;
  for (auto& [w, n] : ws) {
    Word word;
    word.count = n;
    for (size_t i = 0; i < w.size(); ++i) word.pieces.push_back((i ? "##" : "") + encode_utf8(w.substr(i, 1)));
    words.push_back(std::move(word));
  }
  std::unordered_map<std::string, bool> in_vocab;
  for (auto& v : vocab) in_vocab[v] = true;
  for (int m = 0; m < o.max_merges; ++m) {
    std::map<std::pair<std::string, std::string>, int64_t> pairs;
    for (const Word& w : words)
      for (size_t i = 0; i + 1 < w.pieces.size(); ++i) pairs[{w.pieces[i], w.pieces[i + 1]}] += w.count;
    const std::pair<std::string, std::string>* best = nullptr;
    int64_t best_n = 0;
    for (auto& [p, n] : pairs)
      if (n > best_n) best = &p, best_n = n;  // std::map order breaks ties deterministically
    if (!best || best_n < o.min_merge_count) break;
    const std::string a = best->first, b = best->second, merged = join_pieces(a, b);
    for (Word& w : words) {
      for (size_t i = 0; i + 1 < w.pieces.size(); ++i) {
        if (w.pieces[i] == a && w.pieces[i + 1] == b) {
          w.pieces[i] = merged;
          w.pieces.erase(w.pieces.begin() + static_cast<long>(i) + 1);
        }
      }
    }
    if (!in_vocab[merged]) {
      in_vocab[merged] = true;
      vocab.push_back(merged);
    }
  }
  return vocab;
}

}  // namespace erlangshen::data
