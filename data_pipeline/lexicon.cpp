#include "data_pipeline/lexicon.h"
#include "data_pipeline/text_file.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>

#include "data_pipeline/sha256.h"
#include "data_pipeline/utf8.h"
#include "runtime/check.h"

namespace erlangshen::data {

const char* span_kind_name(SpanKind k) {
  switch (k) {
    case SpanKind::Entity: return "entity";
    case SpanKind::Event: return "event";
    default: return "none";
  }
}

void LexiconMatcher::add_term(std::u32string_view term, SpanKind kind) {
  insert_term(term, kind);
  freeze();
}

void LexiconMatcher::freeze() {
  dat_.build(trie_, [](const PrefixTrie::Step& edge, int32_t& tag, double& weight) {
    tag = edge.tag;
    weight = 0;
  });
}

void LexiconMatcher::insert_term(std::u32string_view term, SpanKind kind) {
  if (term.size() < static_cast<size_t>(rules_.min_chars) || kind == SpanKind::None) return;
  trie_.insert(term);
  int32_t& k = trie_.find_step(term)->tag;
  if (k == 0) ++num_terms_;
  if (k == 0 || kind == SpanKind::Entity) k = static_cast<int32_t>(kind);
}

void LexiconMatcher::add_spec(const std::string& spec) {
  if (spec.rfind("entity:", 0) == 0) add_file(spec.substr(7), SpanKind::Entity);
  else if (spec.rfind("event:", 0) == 0) add_file(spec.substr(6), SpanKind::Event);
  else add_file(spec, SpanKind::Entity);
}

void LexiconMatcher::add_file(const std::string& path, SpanKind kind) {
  std::string bytes = read_nonempty_file(path, "lexicon");
  size_t added = 0;
  std::u32string term;
  for_each_line(bytes, [&](size_t line_no, std::string_view line) {
    if (line_no == 1 && line.substr(0, 3) == "\xEF\xBB\xBF") line.remove_prefix(3);
    size_t tab = line.find('\t');
    if (tab != std::string_view::npos) line = line.substr(0, tab);
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.remove_suffix(1);
    while (!line.empty() && line.front() == ' ') line.remove_prefix(1);
    if (line.empty() || line.front() == '#') return;
    if (!is_valid_utf8(line))
      throw Error("lexicon " + path + " line " + std::to_string(line_no) + " is not valid UTF-8");
    term.clear();
    decode_utf8(line, term);
    insert_term(term, kind);
    ++added;
  });
  if (added == 0) throw Error("lexicon " + path + " has no terms");
  freeze();
  sha256_ = sha256_hex(sha256_ + span_kind_name(kind) + ":" + sha256_hex(bytes));
}

void LexiconMatcher::add_dict_pos(const std::string& dict_path) {
  std::string bytes = read_text_file(dict_path, "jieba dictionary");
  std::u32string term;
  for_each_line(bytes, [&](size_t, std::string_view line) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.remove_suffix(1);
    size_t sp1 = line.find(' ');
    if (sp1 == std::string_view::npos) return;
    size_t sp2 = line.find(' ', sp1 + 1);
    if (sp2 == std::string_view::npos) return;
    std::string tag(line.substr(sp2 + 1));
    SpanKind kind = SpanKind::None;
    if (std::find(rules_.entity_tags.begin(), rules_.entity_tags.end(), tag) != rules_.entity_tags.end())
      kind = SpanKind::Entity;
    else if (std::find(rules_.event_tags.begin(), rules_.event_tags.end(), tag) != rules_.event_tags.end())
      kind = SpanKind::Event;
    if (kind == SpanKind::None || !is_valid_utf8(line.substr(0, sp1))) return;
    term.clear();
    decode_utf8(line.substr(0, sp1), term);
    insert_term(term, kind);
  });
  freeze();
  std::string rules;
  for (auto& t : rules_.entity_tags) rules += t + ",";
  rules += "|";
  for (auto& t : rules_.event_tags) rules += t + ",";
  rules += "|" + std::to_string(rules_.min_chars);
  sha256_ = sha256_hex(sha256_ + "pos:" + rules + ":" + sha256_hex(bytes));
}

void LexiconMatcher::match(std::u32string_view text, const std::vector<uint32_t>& word_ends,
                           std::vector<CharSpan>& out) const {
  if (num_terms_ == 0) return;
  const size_t nw = word_ends.size();
  const size_t n = text.size();
  thread_local std::vector<uint32_t> codes;  // (n) dense trie codes of text
  codes.resize(n);
  for (size_t i = 0; i < n; ++i) codes[i] = dat_.code(text[i]);
  size_t w = 0;
  while (w < nw) {
    const uint32_t begin = w == 0 ? 0 : word_ends[w - 1];
    if (w + 1 < nw && word_ends[w] + 1 < n) {  // the next walk's second step
      const int32_t u = dat_.child(DoubleArrayTrie::kRoot, codes[word_ends[w]]);
      if (u >= 0) dat_.prefetch(u, codes[word_ends[w] + 1]);
    }
    // Walk the trie from `begin`; at each word end reached, remember the longest term.
    int32_t unit = DoubleArrayTrie::kRoot;
    size_t best_w = nw;  // index of the last word of the best match
    SpanKind best_kind = SpanKind::None;
    size_t cur_w = w;
    for (uint32_t i = begin; i < n; ++i) {
      unit = dat_.child(unit, codes[i]);
      if (unit < 0) break;
      while (cur_w < nw && word_ends[cur_w] < i + 1) ++cur_w;
      const int32_t tag = DoubleArrayTrie::tag(dat_.unit(unit));
      if (tag != 0 && cur_w < nw && word_ends[cur_w] == i + 1) {
        best_w = cur_w;
        best_kind = static_cast<SpanKind>(tag);
      }
    }
    if (best_w < nw) {
      out.push_back(CharSpan{begin, word_ends[best_w], best_kind});
      w = best_w + 1;
    } else {
      ++w;
    }
  }
}

}  // namespace erlangshen::data
