#include "data_pipeline/vocab.h"
#include "data_pipeline/text_file.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "data_pipeline/sha256.h"
#include "data_pipeline/utf8.h"
#include "runtime/check.h"

namespace erlangshen::data {

Vocab Vocab::load(const std::string& path) {
  const std::string bytes = read_nonempty_file(path, "vocabulary");
  Vocab v;
  for_each_line(bytes, [&](size_t line_no, std::string_view tok) {
    if (!is_valid_utf8(tok))
      throw Error("vocabulary " + path + " line " + std::to_string(line_no) + " is not valid UTF-8");
    v.tokens_.emplace_back(tok);
  });
  v.sha256_ = sha256_hex(bytes);
  v.build(path);
  return v;
}

Vocab Vocab::from_tokens(std::vector<std::string> tokens, std::string name) {
  Vocab v;
  v.tokens_ = std::move(tokens);
  std::string joined;
  for (auto& t : v.tokens_) joined += t + "\n";
  v.sha256_ = sha256_hex(joined);
  v.build(std::move(name));
  return v;
}

void Vocab::build(std::string name) {
  name_ = std::move(name);
  index_.clear();
  index_.reserve(tokens_.size() * 2);
  char_ids_.assign(0x10000 * 2, -1);
  special_.assign(tokens_.size(), 0);
  for (size_t i = 0; i < tokens_.size(); ++i) {
    const std::string& t = tokens_[i];
    index_[std::string_view(t)] = static_cast<int32_t>(i);  // a repeated entry maps to its last line (as HF)
    std::u32string cps;
    decode_utf8(t, cps);
    max_chars_ = std::max(max_chars_, static_cast<int>(cps.size()));
    bool cont = cps.size() == 3 && cps[0] == '#' && cps[1] == '#';
    if (cps.size() == 1 || cont) {
      char32_t c = cps.back();
      if (c < 0x10000) char_ids_[c * 2 + (cont ? 1 : 0)] = static_cast<int32_t>(i);
      else astral_ids_[c * 2 + (cont ? 1 : 0)] = static_cast<int32_t>(i);
    }
    if (t.size() >= 3 && t.front() == '[' && t.back() == ']') special_[i] = 1;
  }
  auto need = [&](const char* tok) {
    int32_t id = find(tok);
    if (id < 0) throw Error("vocabulary " + name_ + " has no " + tok + " entry");
    special_[static_cast<size_t>(id)] = 1;
    return id;
  };
  if (tokens_.empty()) throw Error("vocabulary " + name_ + " is empty");
  pad_ = need("[PAD]");
  unk_ = need("[UNK]");
  cls_ = need("[CLS]");
  sep_ = need("[SEP]");
  mask_ = need("[MASK]");
  replacement_ids_.clear();
  for (size_t i = 0; i < tokens_.size(); ++i)
    if (!special_[i]) replacement_ids_.push_back(static_cast<int32_t>(i));
}

int32_t Vocab::find_char(char32_t c, bool continuation) const {
  if (c < 0x10000) return char_ids_[c * 2 + (continuation ? 1 : 0)];
  auto it = astral_ids_.find(c * 2 + (continuation ? 1 : 0));
  return it == astral_ids_.end() ? -1 : it->second;
}

}  // namespace erlangshen::data
