// Subcommands of the `erlangshen` CLI. Each lives in its own cmd_*.cpp and registers itself on the app;
// the callback it installs runs the command and returns the process exit code through `exit_code`.
#pragma once
#include <CLI/CLI.hpp>

namespace erlangshen::cli {

// Exit codes (DESIGN §9).
constexpr int kExitOk = 0;
constexpr int kExitError = 1;
constexpr int kExitPreempted = 85;  // stopped by SIGTERM/SIGUSR1 after writing a checkpoint (requeue me)

void register_pretrain(CLI::App& app, int& exit_code);
void register_bench(CLI::App& app, int& exit_code);
void register_print_config(CLI::App& app, int& exit_code);
void register_finetune(CLI::App& app, int& exit_code);
void register_evaluate(CLI::App& app, int& exit_code);
void register_predict(CLI::App& app, int& exit_code);
void register_qbqtc_split(CLI::App& app, int& exit_code);
void register_preprocess(CLI::App& app, int& exit_code);
void register_tokenize(CLI::App& app, int& exit_code);
void register_build_vocab(CLI::App& app, int& exit_code);
void register_export(CLI::App& app, int& exit_code);
void register_import(CLI::App& app, int& exit_code);
void register_fill_mask(CLI::App& app, int& exit_code);

}  // namespace erlangshen::cli
