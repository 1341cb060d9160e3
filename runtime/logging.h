// Logging with rank prefixes. A Logger is a value passed to whoever logs; it holds no global state.
// Lines look like "[erlangshen r0/4] message"; only rank 0 prints info() unless all_ranks is set.
#pragma once
#include <cstdio>
#include <string>

namespace erlangshen {

class Logger {
 public:
  Logger(int rank = 0, int world = 1, bool all_ranks = false) : rank_(rank), world_(world), all_ranks_(all_ranks) {}
  int rank() const { return rank_; }
  int world() const { return world_; }
  bool is_root() const { return rank_ == 0; }

  void info(const std::string& msg) const {
    if (rank_ == 0 || all_ranks_) emit(stdout, "", msg);
  }
  void warn(const std::string& msg) const { emit(stderr, "warning: ", msg); }
  void error(const std::string& msg) const { emit(stderr, "error: ", msg); }

 private:
  void emit(FILE* f, const char* level, const std::string& msg) const {
    if (world_ > 1) std::fprintf(f, "[r%d/%d] %s%s\n", rank_, world_, level, msg.c_str());
    else std::fprintf(f, "%s%s\n", level, msg.c_str());
    std::fflush(f);
  }
  int rank_, world_;
  bool all_ranks_;
};

}  // namespace erlangshen
