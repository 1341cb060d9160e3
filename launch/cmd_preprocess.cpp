// `erlangshen preprocess --vocab V --dict D [--lexicon FILE ...] --out DIR INPUT...`: raw text -> HDF5 shards.
// Vocabulary, dictionary and lexicons default to data.vocab / data.dict / data.lexicons of --config.
#include <cstdio>
#include <memory>
#include <regex>

#include "data_pipeline/preprocess.h"
#include "launch/commands.h"
#include "launch/text_pipeline_args.h"
#include "runtime/check.h"
#include "runtime/config.h"

namespace erlangshen::cli {

void register_preprocess(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("preprocess", "Tokenize, segment and tag raw text into HDF5 corpus shards");
  struct Args {
    std::string config, out;
    TextPipelineArgs text;
    std::vector<std::string> inputs;
    int threads = 0;
    int64_t shard_tokens = int64_t{1} << 24;
    int gzip = 0;
    size_t max_line_bytes = size_t{1} << 20;
    bool no_progress = false;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("--config", a->config, "YAML config file (data.vocab, data.dict, data.lexicons, data.lowercase)");
  a->text.add_to(cmd);
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
    if (inputs.empty()) throw Error("preprocess: no input files");
    data::TextPipeline pipeline(a->text.options(c));
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
