#include "data_pipeline/wordpiece.h"

#include "data_pipeline/utf8.h"

namespace erlangshen::data {

WordPiece::WordPiece(const Vocab& vocab, int max_input_chars) : vocab_(vocab), max_chars_(max_input_chars) {
  PrefixTrie initial, continuation;
  std::u32string cps;
  for (int32_t id = 0; id < vocab.size(); ++id) {
    const std::string& t = vocab.token(id);
    if (t.empty() || !is_valid_utf8(t)) continue;
    cps.clear();
    decode_utf8(t, cps);
    auto add = [&](PrefixTrie& trie, std::u32string_view key) {
      trie.insert(key);
      PrefixTrie::Step* s = trie.find_step(key);
      s->tag = 1;
      s->weight = static_cast<double>(id);  // a later line with the same entry wins
    };
    add(initial, cps);
    if (cps.size() > 2 && cps[0] == '#' && cps[1] == '#') add(continuation, std::u32string_view(cps).substr(2));
  }
  auto payload = [](const PrefixTrie::Step& edge, int32_t& tag, double& weight) {
    tag = edge.tag;
    weight = edge.weight;
  };
  initial_.build(initial, payload);
  continuation_.build(continuation, payload);
}

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
  const size_t first = ids.size();
  size_t start = 0;
  while (start < n) {
    // The longest entry that is a prefix of word[start:] ("##"-entries after the first piece).
    const DoubleArrayTrie& trie = start == 0 ? initial_ : continuation_;
    int32_t unit = DoubleArrayTrie::kRoot;
    int32_t found = -1;
    size_t end = start;
    for (size_t i = start; i < n; ++i) {
      unit = trie.child(unit, trie.code(word[i]));
      if (unit < 0) break;
      const DoubleArrayTrie::Unit& u = trie.unit(unit);
      if (DoubleArrayTrie::tag(u)) found = static_cast<int32_t>(u.weight), end = i + 1;
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
