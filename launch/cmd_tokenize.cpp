// `erlangshen tokenize --vocab V --dict D [--lexicon FILE ...]`: text lines on stdin -> one JSON line each with
// `words` (segmenter output), `tokens`, `ids`, `word_start` and `spans` ([begin, end, kind] token spans).
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "data_pipeline/text_pipeline.h"
#include "data_pipeline/utf8.h"
#include "launch/commands.h"
#include "launch/text_pipeline_args.h"
#include "runtime/check.h"
#include "runtime/config.h"

namespace erlangshen::cli {

void register_tokenize(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("tokenize", "Show segmentation, WordPieces and knowledge spans of stdin lines as JSON");
  struct Args {
    std::string config;
    TextPipelineArgs text;
    std::vector<std::string> overrides;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("--config", a->config, "YAML config file");
  a->text.add_to(cmd);
  cmd->add_option("overrides", a->overrides, "key.sub=value overrides");
  cmd->callback([a, &exit_code] {
    Config c = load_config(a->config, a->overrides);
    data::TextPipeline pipeline(a->text.options(c));
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
