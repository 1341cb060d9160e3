// `erlangshen preprocess --vocab V --dict D [--lexicon FILE ...] --out DIR INPUT...`: raw text -> HDF5 shards.
// Vocabulary, dictionary and lexicons default to data.vocab / data.dict / data.lexicons of --config.
#include <cstdio>
#include <memory>
#include <regex>

#include "data_pipeline/preprocess.h"
#include "launch/commands.h"
#include "runtime/check.h"
#include "runtime/config.h"

namespace erlangshen::cli {

void register_preprocess(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("preprocess", "Tokenize, segment and tag raw text into HDF5 corpus shards");
  struct Args {
    std::string config, vocab, dict, out;
    std::vector<std::string> lexicons, user_dicts, inputs, overrides;
    int threads = 0;
    int64_t shard_tokens = int64_t{1} << 24;
    int gzip = 0;
    size_t max_line_bytes = size_t{1} << 20;
    bool no_pos = false, no_progress = false;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("--config", a->config, "YAML config file (data.vocab, data.dict, data.lexicons, data.lowercase)");
  cmd->add_option("--vocab", a->vocab, "WordPiece vocab.txt");
  cmd->add_option("--dict", a->dict, "jieba dictionary (word freq [pos])");
  cmd->add_option("--user-dict", a->user_dicts, "jieba user dictionary (repeatable)");
  cmd->add_option("--lexicon", a->lexicons, "knowledge lexicon: FILE, entity:FILE or event:FILE (repeatable)");
  cmd->add_flag("--no-pos-lexicon", a->no_pos, "do not use dictionary POS tags (nr/ns/nt/nz, v/vn) as knowledge terms");
  cmd->add_option("--out", a->out, "output directory for shard_NNNNN.h5")->required();
  cmd->add_option("--threads", a->threads, "worker threads (0: all cores)");
  cmd->add_option("--shard-tokens", a->shard_tokens, "target tokens per shard");
  cmd->add_option("--gzip", a->gzip, "gzip level 1-9 for the chunks (0: none)")->check(CLI::Range(0, 9));
  cmd->add_option("--max-line-bytes", a->max_line_bytes, "skip (and report) longer lines");
  cmd->add_flag("--no-progress", a->no_progress, "no progress bar");
  cmd->add_option("args", a->inputs, "input text files, then optional key=value config overrides")->required();
  cmd->callback([a, &exit_code] {
    std::vector<std::string> inputs, overrides;
    static const std::regex kOverride("^[a-z_]+(\\.[a-z_0-9]+)+=.*");  // key.sub=value, not a file name
    for (auto& s : a->inputs) (std::regex_match(s, kOverride) ? overrides : inputs).push_back(s);
    Config c = load_config(a->config, overrides);
    data::TextPipelineOptions t;
    t.vocab = a->vocab.empty() ? c.data.vocab : a->vocab;
    t.dict = a->dict.empty() ? c.data.dict : a->dict;
    t.lexicons = a->lexicons.empty() ? c.data.lexicons : a->lexicons;
    t.user_dicts = a->user_dicts;
    t.pos_lexicon = !a->no_pos;
    t.lowercase = c.data.lowercase;
    if (inputs.empty()) throw Error("preprocess: no input files");
    data::TextPipeline pipeline(t);
    data::PreprocessOptions p;
    p.inputs = inputs;
    p.out_dir = a->out;
    p.threads = a->threads;
    p.shard_tokens = a->shard_tokens;
    p.gzip_level = a->gzip;
    p.max_line_bytes = a->max_line_bytes;
    p.progress = !a->no_progress;
    data::PreprocessReport r = data::run_preprocess(pipeline, p);
    std::fputs(data::format_summary(r).c_str(), stdout);
    exit_code = kExitOk;
  });
}

}  // namespace erlangshen::cli
