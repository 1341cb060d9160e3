// `erlangshen print-config --config FILE [key=value ...]`: the effective configuration after overrides.
#include <cstdio>

#include "launch/commands.h"
#include "runtime/config.h"

namespace erlangshen::cli {

void register_print_config(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("print-config", "Print every configuration key with its effective value");
  auto config_path = std::make_shared<std::string>();
  auto overrides = std::make_shared<std::vector<std::string>>();
  cmd->add_option("--config", *config_path, "YAML config file");
  cmd->add_option("overrides", *overrides, "key.sub=value overrides");
  cmd->callback([=, &exit_code] {
    Config c = load_config(*config_path, *overrides);
    std::fputs(dump_config(c).c_str(), stdout);
    exit_code = kExitOk;
  });
}

}  // namespace erlangshen::cli
