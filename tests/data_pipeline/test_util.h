// Helpers shared by the data-pipeline tests: paths to ../shared data, temporary directories, and running the
// Python reference scripts of tests/reference/ (skipping when Python or a module is missing).
#pragma once
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace erlangshen::data::testing {

inline std::string shared_path(const std::string& rel) { return std::string(ERLANGSHEN_SHARED_DIR) + "/" + rel; }
inline bool have_shared() { return std::filesystem::exists(shared_path("data/vocab/vocab.txt")); }
inline std::string source_path(const std::string& rel) { return std::string(ERLANGSHEN_SOURCE_DIR) + "/" + rel; }

#define ERL_REQUIRE_SHARED()                                                                   \
  do {                                                                                        \
    if (!::erlangshen::data::testing::have_shared()) GTEST_SKIP() << "no " ERLANGSHEN_SHARED_DIR; \
  } while (0)

// A fresh directory under the build tree, removed at destruction.
class TempDir {
 public:
  explicit TempDir(const std::string& tag) {
    path_ = std::filesystem::path(ERLANGSHEN_BINARY_DIR) / "test_tmp" /
            (tag + "_" + std::to_string(::getpid()) + "_" + std::to_string(counter()++));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  const std::filesystem::path& path() const { return path_; }

 private:
  static int& counter() {
    static int c = 0;
    return c;
  }
  std::filesystem::path path_;
};

inline void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

inline std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) lines.push_back(line);
  return lines;
}

// True when /usr/bin/python3 (ERLANGSHEN_PYTHON) can import `module`.
inline bool python_has(const std::string& module) {
  std::string cmd = std::string(ERLANGSHEN_PYTHON) + " -c 'import " + module + "' >/dev/null 2>&1";
  return std::system(cmd.c_str()) == 0;
}

// Runs `ERLANGSHEN_PYTHON script args < input_file > output_file`; returns the exit status.
inline int run_python(const std::string& script, const std::string& args, const std::string& input_file,
                      const std::string& output_file) {
  std::string cmd = std::string(ERLANGSHEN_PYTHON) + " " + source_path("tests/reference/" + script) + " " + args +
                    " < " + input_file + " > " + output_file;
  int rc = std::system(cmd.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

// Texts as JSON-string lines (the input format of the reference scripts).
inline void write_json_lines(const std::string& path, const std::vector<std::string>& texts) {
  std::ofstream out(path, std::ios::binary);
  for (const auto& t : texts) out << nlohmann::json(t).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
}

// The first `max_lines` non-blank lines of a corpus file.
inline std::vector<std::string> corpus_lines(const std::string& path, size_t max_lines, size_t stride = 1) {
  std::ifstream in(path);
  std::vector<std::string> out;
  std::string line;
  size_t k = 0;
  while (out.size() < max_lines && std::getline(in, line)) {
    if (line.empty()) continue;
    if (k++ % stride == 0) out.push_back(line);
  }
  return out;
}

}  // namespace erlangshen::data::testing
