// Helpers of the fine-tuning tests: ../shared data paths (tests skip when absent) and scratch directories.
#pragma once
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace erlangshen::ft_testing {

inline std::string shared_path(const std::string& rel) { return std::string(ERLANGSHEN_SHARED_DIR) + "/" + rel; }
inline bool have_qbqtc() {
  return std::filesystem::exists(shared_path("data/vocab/vocab.txt")) &&
         std::filesystem::exists(shared_path("data/qbqtc/dev.json"));
}

#define ERL_FT_REQUIRE_SHARED()                                                                  \
  do {                                                                                          \
    if (!::erlangshen::ft_testing::have_qbqtc()) GTEST_SKIP() << "no QBQTC data under " ERLANGSHEN_SHARED_DIR; \
  } while (0)

// A fresh directory under the build tree, removed at destruction.
class ScratchDir {
 public:
  explicit ScratchDir(const std::string& tag) {
    path_ = std::filesystem::path(ERLANGSHEN_BINARY_DIR) / "test_tmp" / (tag + "_" + std::to_string(::getpid()));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  std::string write(const std::string& name, const std::string& text) const {
    std::ofstream(file(name), std::ios::binary) << text;
    return file(name);
  }

 private:
  std::filesystem::path path_;
};

}  // namespace erlangshen::ft_testing
