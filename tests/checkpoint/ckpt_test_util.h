// Helpers of the checkpoint tests: scratch directories, running the `erlangshen` binary, reading metrics.
#pragma once
#include <gtest/gtest.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace erlangshen::ckpt_testing {

namespace fs = std::filesystem;

inline std::string binary() { return std::string(ERLANGSHEN_BINARY_DIR) + "/launch/erlangshen"; }
inline std::string source(const std::string& rel) { return std::string(ERLANGSHEN_SOURCE_DIR) + "/" + rel; }

// A fresh directory under the build tree, removed at destruction.
class ScratchDir {
 public:
  explicit ScratchDir(const std::string& tag) {
    path_ = fs::path(ERLANGSHEN_BINARY_DIR) / "test_tmp" / (tag + "_" + std::to_string(::getpid()));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// The small model of these tests: fast on one core, dropout on.
inline std::vector<std::string> small_model_args() {
  return {"--config", source("configs/tiny.yaml"), "model.hidden=64", "model.layers=2", "model.heads=2",
          "model.ffn=128", "model.vocab_size=1000", "train.micro_batch=4", "train.seq_len=32", "train.steps=20",
          "train.warmup_steps=5", "train.dropout=0.1", "train.attention_dropout=0.1", "log.every=1",
          "train.threads=1"};
}

// Starts `argv` with stdout+stderr to `log`; `env` entries ("K=V") are added to the environment.
inline pid_t spawn(const std::vector<std::string>& argv, const std::string& log, const std::vector<std::string>& env = {}) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<std::string> envs;
  for (char** e = environ; *e; ++e) envs.emplace_back(*e);
  for (const auto& e : env) envs.push_back(e);
  std::vector<char*> envp;
  for (auto& e : envs) envp.push_back(e.data());
  envp.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, args[0], &fa, nullptr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) return -1;
  return pid;
}

// Exit code of a spawned process (128 + signal when killed).
inline int wait_exit(pid_t pid) {
  int status = 0;
  if (waitpid(pid, &status, 0) < 0) return -1;
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

inline std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Runs `erlangshen ARGS...`, returns the exit code; output goes to `log`.
inline int run_erlangshen(const std::vector<std::string>& args, const std::string& log,
                          const std::vector<std::string>& env = {}) {
  std::vector<std::string> argv{binary()};
  argv.insert(argv.end(), args.begin(), args.end());
  const pid_t pid = spawn(argv, log, env);
  if (pid < 0) return -1;
  return wait_exit(pid);
}

inline std::vector<std::string> concat(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// step -> loss of a metrics JSON-lines file (the last record of a step wins).
inline std::map<int64_t, double> read_losses(const std::string& path) {
  std::map<int64_t, double> out;
  std::ifstream f(path);
  std::string line;
  while (std::getline(f, line))
    if (!line.empty()) {
      const auto j = nlohmann::json::parse(line);
      out[j.at("step").get<int64_t>()] = j.at("loss").get<double>();
    }
  return out;
}

inline bool wait_for_file(const std::string& path, double seconds) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < until) {
    if (fs::exists(path)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

}  // namespace erlangshen::ckpt_testing
