// `erlangshen export CKPT OUT_DIR`: a checkpoint (directory -> its latest, or a step folder; any TP layout) to an
// HF folder that transformers.MegatronBertForPreTraining.from_pretrained loads (checkpoint/hf_format.h).
#include "checkpoint/hf_format.h"
#include "launch/commands.h"
#include "runtime/logging.h"

namespace erlangshen::cli {

void register_export(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("export", "Export a checkpoint as a HuggingFace MegatronBert folder");
  auto ckpt = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  auto vocab = std::make_shared<std::string>();
  cmd->add_option("checkpoint", *ckpt, "checkpoint directory (its latest) or step folder")->required();
  cmd->add_option("out_dir", *out, "HF folder to write (model.safetensors, config.json, vocab.txt)")->required();
  cmd->add_option("--vocab", *vocab, "vocab.txt to include when the checkpoint holds none");
  cmd->callback([=, &exit_code] {
    Logger log;
    const ckpt::ExportReport r = ckpt::export_hf(*ckpt, *out, *vocab);
    log.info("export: step " + std::to_string(r.step) + " of " + r.folder + " -> " + *out + " (" +
             std::to_string(r.tensors) + " tensors, " + std::to_string(r.bytes >> 20) + " MiB" +
             (r.vocab ? ", vocab.txt" : "") + ")");
    if (!r.vocab) log.warn("export: no vocab.txt (the checkpoint holds none; pass --vocab FILE)");
    exit_code = kExitOk;
  });
}

}  // namespace erlangshen::cli
