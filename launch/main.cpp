// erlangshen: one binary, one subcommand per job (DESIGN §7).
#include <cstdio>
#include <exception>

#include "launch/commands.h"
#include "runtime/blas_select.h"
#include "runtime/check.h"

int main(int argc, char** argv) {
  erlangshen::select_blas_kernels(argv);
  CLI::App app{"erlangshen: pretrain and fine-tune Chinese MegatronBERT encoders (CPU and CUDA, TP x DP)"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "erlangshen 0.1.0");
  int exit_code = erlangshen::cli::kExitOk;
  erlangshen::cli::register_pretrain(app, exit_code);
  erlangshen::cli::register_bench(app, exit_code);
  erlangshen::cli::register_print_config(app, exit_code);
  erlangshen::cli::register_finetune(app, exit_code);
  erlangshen::cli::register_evaluate(app, exit_code);
  erlangshen::cli::register_predict(app, exit_code);
  erlangshen::cli::register_qbqtc_split(app, exit_code);
  erlangshen::cli::register_preprocess(app, exit_code);
  erlangshen::cli::register_tokenize(app, exit_code);
  erlangshen::cli::register_build_vocab(app, exit_code);
  erlangshen::cli::register_export(app, exit_code);
  erlangshen::cli::register_import(app, exit_code);
  erlangshen::cli::register_fill_mask(app, exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const erlangshen::Error& e) {
    std::fprintf(stderr, "erlangshen: error: %s\n", e.what());
    return erlangshen::cli::kExitError;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "erlangshen: error: %s\n", e.what());
    return erlangshen::cli::kExitError;
  }
  return exit_code;
}
