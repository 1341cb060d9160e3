// The text-processing options `preprocess` and `tokenize` share: vocabulary, jieba dictionary, user
// dictionaries and knowledge lexicons, each defaulting to the data.* keys of --config.
#pragma once
#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "data_pipeline/text_pipeline.h"
#include "runtime/config.h"

namespace erlangshen::cli {

struct TextPipelineArgs {
  std::string vocab, dict;
  std::vector<std::string> lexicons, user_dicts;
  bool no_pos = false;

  void add_to(CLI::App* cmd) {
    cmd->add_option("--vocab", vocab, "WordPiece vocab.txt (default: data.vocab)");
    cmd->add_option("--dict", dict, "jieba dictionary, word freq [pos] (default: data.dict)");
    cmd->add_option("--user-dict", user_dicts, "jieba user dictionary (repeatable)");
    cmd->add_option("--lexicon", lexicons,
                    "knowledge lexicon: FILE, entity:FILE or event:FILE (repeatable; default: data.lexicons)");
    cmd->add_flag("--no-pos-lexicon", no_pos, "do not use dictionary POS tags (nr/ns/nt/nz, v/vn) as knowledge terms");
  }

  // Command-line values where given, the config's otherwise.
  data::TextPipelineOptions options(const Config& c) const {
    data::TextPipelineOptions t;
    t.vocab = vocab.empty() ? c.data.vocab : vocab;
    t.dict = dict.empty() ? c.data.dict : dict;
    t.lexicons = lexicons.empty() ? c.data.lexicons : lexicons;
    t.user_dicts = user_dicts;
    t.pos_lexicon = !no_pos;
    t.lowercase = c.data.lowercase;
    return t;
  }
};

}  // namespace erlangshen::cli
