#include "data_pipeline/segmenter.h"
#include "data_pipeline/text_file.h"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>

#include "data_pipeline/sha256.h"
#include "data_pipeline/utf8.h"
#include "runtime/check.h"

namespace erlangshen::data {

namespace {

inline bool is_han_block_char(char32_t c) {
  return (c >= 0x4E00 && c <= 0x9FD5) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '+' || c == '#' || c == '&' || c == '.' || c == '_' || c == '%' || c == '-';
}
inline bool is_eng(char32_t c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }

// Python's str.isspace().
inline bool py_isspace(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

// Python int() on a stripped ASCII token of digits (optionally signed); false when it is not an integer.
bool parse_int(std::string_view s, int64_t& v) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  if (s.empty()) return false;
  bool neg = false;
  if (s[0] == '+' || s[0] == '-') neg = s[0] == '-', s.remove_prefix(1);
  if (s.empty() || s.size() > 18) return false;
  v = 0;
  for (char ch : s) {
    if (ch < '0' || ch > '9') return false;
    v = v * 10 + (ch - '0');
  }
  if (neg) v = -v;
  return true;
}

}  // namespace

void Segmenter::set_word(std::u32string_view word, int64_t freq) {
  int32_t node = trie_.insert(word);
  if (static_cast<size_t>(trie_.num_nodes()) > freq_.size()) freq_.resize(static_cast<size_t>(trie_.num_nodes()) * 2, 0);
  if (freq_[node] == 0 && freq > 0) ++num_words_;
  freq_[node] = freq;
}

Segmenter Segmenter::load(const std::string& dict_path) {
  Segmenter s;
  std::string bytes = read_nonempty_file(dict_path, "jieba dictionary");
  std::u32string word;
  for_each_line(bytes, [&](size_t line_no, std::string_view line) {
    // bytes.strip(): ASCII whitespace
    while (!line.empty() && std::strchr(" \t\r\n\v\f", line.back()) && line.back()) line.remove_suffix(1);
    while (!line.empty() && std::strchr(" \t\r\n\v\f", line.front()) && line.front()) line.remove_prefix(1);
    if (line.empty()) return;
    if (!is_valid_utf8(line))
      throw Error("jieba dictionary " + dict_path + " line " + std::to_string(line_no) + " is not valid UTF-8");
    size_t sp1 = line.find(' ');
    int64_t freq = 0;
    if (sp1 == std::string_view::npos || sp1 == 0) {
      throw Error("invalid dictionary entry in " + dict_path + " at line " + std::to_string(line_no) + ": '" +
                  std::string(line) + "' (expected 'word freq [pos]')");
    }
    size_t sp2 = line.find(' ', sp1 + 1);
    std::string_view f = line.substr(sp1 + 1, sp2 == std::string_view::npos ? std::string_view::npos : sp2 - sp1 - 1);
    if (!parse_int(f, freq) || freq < 0)
      throw Error("invalid dictionary entry in " + dict_path + " at line " + std::to_string(line_no) + ": '" +
                  std::string(line) + "' (frequency is not a non-negative integer)");
    word.clear();
    decode_utf8(line.substr(0, sp1), word);
    s.set_word(word, freq);
    s.total_ += freq;
  });
  if (s.num_words_ == 0) throw Error("jieba dictionary " + dict_path + " has no words with a positive frequency");
  s.sha256_ = sha256_hex(bytes);
  s.freeze();
  return s;
}

void Segmenter::freeze() {
  log_total_ = std::log(static_cast<double>(total_));
  dat_.build(trie_, [&](const PrefixTrie::Step& edge, int32_t& tag, double& weight) {
    const int64_t f = freq_[static_cast<size_t>(edge.node)];
    tag = f > 0 ? 1 : 0;
    weight = f > 0 ? std::log(static_cast<double>(f)) - log_total_ : 0.0;
  });
  frozen_ = true;
}

void Segmenter::add_word(std::u32string_view word, int64_t freq) {
  add_word_only(word, freq);
  if (!frozen_) freeze();
}

void Segmenter::add_word_only(std::u32string_view word, int64_t freq) {
  if (word.empty()) return;
  if (freq < 0) {  // suggest_freq(word, tune=False)
    double ftotal = static_cast<double>(total_);
    double f = 1.0;
    std::vector<uint32_t> ends;
    cut(word, ends);
    uint32_t b = 0;
    for (uint32_t e : ends) {
      int32_t node = trie_.find(word.substr(b, e - b));
      double fs = node == PrefixTrie::kNone ? 1.0 : static_cast<double>(freq_[node]);
      f *= fs / ftotal;
      b = e;
    }
    int32_t node = trie_.find(word);
    int64_t existing = node == PrefixTrie::kNone ? 1 : freq_[node];
    freq = std::max(static_cast<int64_t>(f * static_cast<double>(total_)) + 1, existing);
  }
  set_word(word, freq);
  total_ += freq;
  log_total_ = std::log(static_cast<double>(total_));
  frozen_ = false;
}

void Segmenter::load_user_dict(const std::string& path) {
  std::string bytes = read_text_file(path, "user dictionary");
  if (!is_valid_utf8(bytes)) throw Error("user dictionary " + path + " must be UTF-8");
  std::u32string all;
  decode_utf8(bytes, all);
  size_t start = 0;
  bool first = true;
  while (start < all.size()) {
    size_t nl = all.find(U'\n', start);
    if (nl == std::u32string::npos) nl = all.size();
    std::u32string_view line(all.data() + start, nl - start);
    start = nl + 1;
    while (!line.empty() && py_isspace(line.back())) line.remove_suffix(1);
    while (!line.empty() && py_isspace(line.front())) line.remove_prefix(1);
    if (first && !line.empty() && line.front() == 0xFEFF) line.remove_prefix(1);
    first = false;
    if (line.empty()) continue;
    // '^(.+?)( [0-9]+)?( [a-z]+)?$': take the optional groups from the end while the word stays non-empty.
    auto take_suffix = [&](std::u32string_view& s, bool digits) {
      size_t k = s.size();
      while (k > 0 && (digits ? (s[k - 1] >= '0' && s[k - 1] <= '9') : (s[k - 1] >= 'a' && s[k - 1] <= 'z'))) --k;
      if (k == s.size() || k < 2 || s[k - 1] != ' ') return std::u32string_view();
      std::u32string_view g = s.substr(k);
      s = s.substr(0, k - 1);
      return g;
    };
    std::u32string_view word = line;
    take_suffix(word, false);
    std::u32string_view freq = take_suffix(word, true);
    int64_t f = -1;
    if (!freq.empty()) parse_int(encode_utf8(freq), f);
    add_word_only(word, f);
  }
  if (!frozen_) freeze();
  sha256_ = sha256_hex(sha256_ + sha256_hex(bytes));
}

namespace {

// The DAG scoring of cut_block: route[idx] = max over words idx..x of weight(idx..x) + route[x + 1] (ties to
// the larger x); a position where no word starts takes the character alone with weight -log(total).
// Walker: reset(idx) starts at idx; next(i, tag, weight) steps over character i (false when there is no edge).
template <typename Walker>
void score_dag(size_t n, double log_total, Walker&& walk, std::vector<double>& score, std::vector<uint32_t>& best) {
  score.assign(n + 1, 0.0);
  best.resize(n);
  for (size_t idx = n; idx-- > 0;) {
    walk.reset(idx);
    double best_score = 0;
    int64_t best_x = -1;
    int32_t tag;
    double weight;
    for (size_t i = idx; i < n && walk.next(i, tag, weight); ++i) {
      if (tag) {  // a word (freq > 0)
        double v = weight + score[i + 1];
        if (best_x < 0 || v > best_score || (v == best_score && static_cast<int64_t>(i) > best_x))
          best_score = v, best_x = static_cast<int64_t>(i);
      }
    }
    if (best_x < 0) {  // no word starts here: the character alone, FREQ.get(c) or 1
      best_score = -log_total + score[idx + 1];
      best_x = static_cast<int64_t>(idx);
    }
    score[idx] = best_score;
    best[idx] = static_cast<uint32_t>(best_x);
  }
}

}  // namespace

void Segmenter::cut_block(std::u32string_view s, uint32_t base, std::vector<uint32_t>& word_ends) const {
  const size_t n = s.size();
  thread_local std::vector<double> score;  // (n+1) route[i][0]
  thread_local std::vector<uint32_t> best;  // (n) route[i][1]: end index (inclusive) of the word from i
  if (frozen_) {
    thread_local std::vector<uint32_t> codes;  // (n) dense trie codes of s
    codes.resize(n);
    for (size_t i = 0; i < n; ++i) codes[i] = dat_.code(s[i]);
    struct DatWalker {
      const DoubleArrayTrie& dat;
      const uint32_t* codes;
      int32_t unit;
      void reset(size_t idx) {
        unit = DoubleArrayTrie::kRoot;
        constexpr size_t kAhead = 3;
        if (idx >= kAhead) {  // the second step of the walk kAhead positions on
          const int32_t u = dat.child(DoubleArrayTrie::kRoot, codes[idx - kAhead]);
          if (u >= 0) dat.prefetch(u, codes[idx - kAhead + 1]);
        }
      }
      bool next(size_t i, int32_t& tag, double& weight) {
        unit = dat.child(unit, codes[i]);
        if (unit < 0) return false;
        const DoubleArrayTrie::Unit& u = dat.unit(unit);
        tag = DoubleArrayTrie::tag(u);
        weight = u.weight;
        return true;
      }
    };
    score_dag(n, log_total_, DatWalker{dat_, codes.data(), 0}, score, best);
  } else {  // between add_word_only calls (user dictionaries): walk the mutable trie
    struct TrieWalker {
      const PrefixTrie& trie;
      const std::vector<int64_t>& freq;
      std::u32string_view s;
      double log_total;
      int32_t node;
      void reset(size_t) { node = 0; }
      bool next(size_t i, int32_t& tag, double& weight) {
        node = trie.child(node, s[i]);
        if (node == PrefixTrie::kNone) return false;
        const int64_t f = freq[static_cast<size_t>(node)];
        tag = f > 0 ? 1 : 0;
        weight = f > 0 ? std::log(static_cast<double>(f)) - log_total : 0.0;
        return true;
      }
    };
    score_dag(n, log_total_, TrieWalker{trie_, freq_, s, log_total_, 0}, score, best);
  }
  size_t x = 0;
  bool in_buf = false;  // a run of single ASCII letters/digits being merged
  while (x < n) {
    size_t y = best[x] + 1;
    if (y - x == 1 && is_eng(s[x])) {
      in_buf = true;
    } else {
      if (in_buf) word_ends.push_back(base + static_cast<uint32_t>(x));
      in_buf = false;
      word_ends.push_back(base + static_cast<uint32_t>(y));
    }
    x = y;
  }
  if (in_buf) word_ends.push_back(base + static_cast<uint32_t>(n));
}

void Segmenter::cut(std::u32string_view text, std::vector<uint32_t>& word_ends) const {
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    if (is_han_block_char(text[i])) {
      size_t e = i + 1;
      while (e < n && is_han_block_char(text[e])) ++e;
      cut_block(text.substr(i, e - i), static_cast<uint32_t>(i), word_ends);
      i = e;
    } else if (text[i] == '\r' && i + 1 < n && text[i + 1] == '\n') {
      i += 2;
      word_ends.push_back(static_cast<uint32_t>(i));
    } else {
      ++i;
      word_ends.push_back(static_cast<uint32_t>(i));
    }
  }
}

std::vector<std::string> Segmenter::cut_utf8(std::string_view text) const {
  std::u32string cps;
  decode_utf8(text, cps);
  std::vector<uint32_t> ends;
  cut(cps, ends);
  std::vector<std::string> words;
  uint32_t b = 0;
  for (uint32_t e : ends) {
    words.push_back(encode_utf8(std::u32string_view(cps).substr(b, e - b)));
    b = e;
  }
  return words;
}

}  // namespace erlangshen::data
