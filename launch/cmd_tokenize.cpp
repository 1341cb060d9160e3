// `erlangshen tokenize --vocab V --dict D [--lexicon FILE ...]`: text lines on stdin -> one JSON line each with
// `words` (segmenter output), `tokens`, `ids`, `word_start` and `spans` ([begin, end, kind] token spans).
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "data_pipeline/text_pipeline.h"
#include "data_pipeline/utf8.h"
#include "launch/commands.h"
#include "runtime/check.h"
#include "runtime/config.h"

namespace erlangshen::cli {

void register_tokenize(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("tokenize", "Show segmentation, WordPieces and knowledge spans of stdin lines as JSON");
  struct Args {
    std::string config, vocab, dict;
    std::vector<std::string> lexicons, user_dicts, overrides;
    bool no_pos = false;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("--config", a->config, "YAML config file");
  cmd->add_option("--vocab", a->vocab, "WordPiece vocab.txt");
  cmd->add_option("--dict", a->dict, "jieba dictionary");
  cmd->add_option("--user-dict", a->user_dicts, "jieba user dictionary (repeatable)");
  cmd->add_option("--lexicon", a->lexicons, "knowledge lexicon: FILE, entity:FILE or event:FILE (repeatable)");
  cmd->add_flag("--no-pos-lexicon", a->no_pos, "do not use dictionary POS tags as knowledge terms");
  cmd->add_option("overrides", a->overrides, "key.sub=value overrides");
  cmd->callback([a, &exit_code] {
    Config c = load_config(a->config, a->overrides);
    data::TextPipelineOptions t;
    t.vocab = a->vocab.empty() ? c.data.vocab : a->vocab;
    t.dict = a->dict.empty() ? c.data.dict : a->dict;
    t.lexicons = a->lexicons.empty() ? c.data.lexicons : a->lexicons;
    t.user_dicts = a->user_dicts;
    t.pos_lexicon = !a->no_pos;
    t.lowercase = c.data.lowercase;
    data::TextPipeline pipeline(t);
    const data::TextProcessor proc = pipeline.processor();
    const data::Vocab& vocab = pipeline.tokenizer().vocab();
    std::string line;
    std::u32string text;
    data::SentenceTokens st;
    int64_t line_no = 0;
    while (std::getline(std::cin, line)) {
      ++line_no;
      if (!line.empty() && line.back() == '\r') line.pop_back();
      text.clear();
      size_t bad = data::decode_utf8(line, text);
      if (bad) std::fprintf(stderr, "warning: stdin:%lld: %zu invalid UTF-8 sequence(s) replaced\n", (long long)line_no, bad);
      proc.process_text(text, st);
      nlohmann::json j;
      std::vector<std::string> words, tokens;
      uint32_t b = 0;
      for (uint32_t e : st.word_ends) {
        words.push_back(data::encode_utf8(std::u32string_view(text).substr(b, e - b)));
        b = e;
      }
      for (int32_t id : st.enc.ids) tokens.push_back(vocab.token(id));
      j["words"] = words;
      j["tokens"] = tokens;
      j["ids"] = st.enc.ids;
      j["word_start"] = st.word_start;
      nlohmann::json spans = nlohmann::json::array();
      for (size_t k = 0; k < st.spans.size(); k += 3)
        spans.push_back({st.spans[k], st.spans[k + 1], data::span_kind_name(static_cast<data::SpanKind>(st.spans[k + 2]))});
      j["spans"] = spans;
      std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
    }
    exit_code = kExitOk;
  });
}

}  // namespace erlangshen::cli
