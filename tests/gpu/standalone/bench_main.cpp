// `erlangshen bench` alone, for the GPU-only standalone build (tests/gpu/standalone): the same subcommand
// (launch/cmd_bench.cpp, train.device=cuda) without the commands that need MPI, HDF5 or utf8proc.
#include <cstdio>
#include <exception>

#include "launch/commands.h"
#include "runtime/check.h"

int main(int argc, char** argv) {
  CLI::App app{"erlangshen (standalone GPU build: bench only)"};
  app.require_subcommand(1);
  int exit_code = erlangshen::cli::kExitOk;
  erlangshen::cli::register_bench(app, exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "erlangshen: error: %s\n", e.what());
    return erlangshen::cli::kExitError;
  }
  return exit_code;
}
