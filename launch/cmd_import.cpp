// `erlangshen import HF_DIR OUT_CKPT`: an HF MegatronBert folder (e.g. the published Erlangshen-MegatronBert-1.3B)
// to a checkpoint at step 0 that `pretrain` resumes from and `finetune` starts from (checkpoint.init).
#include "checkpoint/hf_format.h"
#include "launch/commands.h"
#include "runtime/logging.h"

namespace erlangshen::cli {

void register_import(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("import", "Import a HuggingFace MegatronBert folder as a checkpoint");
  auto hf = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  auto seed = std::make_shared<uint64_t>(1234);
  cmd->add_option("hf_dir", *hf, "folder with config.json and model.safetensors (or its .index.json)")->required();
  cmd->add_option("out_checkpoint", *out, "checkpoint directory to create (step_00000000 + latest)")->required();
  cmd->add_option("--seed", *seed, "initialisation seed of tensors the folder lacks (e.g. MLM/SOP heads)");
  cmd->callback([=, &exit_code] {
    Logger log;
    const ckpt::ImportReport r = ckpt::import_hf(*hf, *out, *seed);
    const ModelConfig& m = r.model;
    log.info("import: " + *hf + " -> " + r.checkpoint_folder + " (hidden " + std::to_string(m.hidden) + ", layers " +
             std::to_string(m.layers) + ", heads " + std::to_string(m.heads) + ", ffn " + std::to_string(m.ffn) +
             ", vocab " + std::to_string(m.vocab_size) + " padded to " + std::to_string(m.padded_vocab(1)) + ", " +
             activation_name(m.activation) + ", " + r.heads + " heads)");
    for (const auto& n : r.initialized) log.warn("import: " + n + " is not in " + *hf + ": initialised fresh");
    for (const auto& n : r.ignored) log.warn("import: " + n + " ignored (no such parameter)");
    log.info("use it with: model.hidden=" + std::to_string(m.hidden) + " model.layers=" + std::to_string(m.layers) +
             " model.heads=" + std::to_string(m.heads) + " model.ffn=" + std::to_string(m.ffn) + " model.vocab_size=" +
             std::to_string(m.vocab_size) + " model.activation=" + activation_name(m.activation) + " checkpoint.dir=" + *out);
    exit_code = kExitOk;
  });
}

}  // namespace erlangshen::cli
