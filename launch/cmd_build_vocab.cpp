// `erlangshen build-vocab --out vocab.txt INPUT...`: a WordPiece vocabulary from a corpus (CJK characters and
// their ## forms, plus learned pieces for other scripts; special tokens first in BERT's order).
#include <cstdio>
#include <fstream>
#include <memory>

#include "data_pipeline/vocab_builder.h"
#include "launch/commands.h"
#include "runtime/check.h"

namespace erlangshen::cli {

void register_build_vocab(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("build-vocab", "Build a WordPiece vocab.txt from a text corpus");
  auto o = std::make_shared<data::VocabBuildOptions>();
  auto out = std::make_shared<std::string>();
  auto cased = std::make_shared<bool>(false);
  cmd->add_option("--out", *out, "vocab.txt to write")->required();
  cmd->add_option("--unused", o->unused, "number of [unusedN] entries");
  cmd->add_option("--min-char-count", o->min_char_count, "drop rarer characters (they become [UNK])");
  cmd->add_option("--max-merges", o->max_merges, "learned multi-character pieces for non-CJK words");
  cmd->add_flag("--cased", *cased, "keep case and accents (default: lowercase + strip accents)");
  cmd->add_option("inputs", o->inputs, "corpus text files")->required();
  cmd->callback([o, out, cased, &exit_code] {
    o->lowercase = !*cased;
    std::vector<std::string> vocab = data::build_vocab(*o);
    std::ofstream f(*out, std::ios::binary);
    if (!f) throw Error("cannot write " + *out);
    for (const auto& t : vocab) f << t << '\n';
    if (!f) throw Error("cannot write " + *out);
    std::printf("wrote %zu entries to %s\n", vocab.size(), out->c_str());
    exit_code = kExitOk;
  });
}

}  // namespace erlangshen::cli
