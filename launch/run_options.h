// Options every job subcommand shares: --config FILE and key=value overrides (DESIGN §9).
#pragma once
#include <CLI/CLI.hpp>
#include <memory>
#include <string>
#include <vector>

#include "runtime/config.h"

namespace erlangshen::cli {

struct RunOptions {
  std::string config_path;
  std::vector<std::string> overrides;
  Config load() const { return load_config(config_path, overrides); }
};

inline std::shared_ptr<RunOptions> add_run_options(CLI::App* cmd) {
  auto o = std::make_shared<RunOptions>();
  cmd->add_option("--config", o->config_path, "YAML config file (configs/*.yaml)");
  cmd->add_option("overrides", o->overrides, "key.sub=value overrides applied after the file");
  return o;
}

}  // namespace erlangshen::cli
