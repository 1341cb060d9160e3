// Errors that name where they happened. Every user-facing failure is an erlangshen::Error whose message
// names the file/key/rank involved; ERL_CHECK adds the source location for internal invariants.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace erlangshen {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

namespace detail {
[[noreturn]] inline void fail(const char* file, int line, const std::string& what) {
  std::ostringstream os;
  os << what << " (" << file << ":" << line << ")";
  throw Error(os.str());
}
}  // namespace detail

}  // namespace erlangshen

// ERL_CHECK(cond, "message " << value): throws erlangshen::Error("message value (file.cpp:42)").
#define ERL_CHECK(cond, msg)                                             \
  do {                                                                   \
    if (!(cond)) {                                                       \
      std::ostringstream erl_os_;                                        \
      erl_os_ << msg;                                                    \
      ::erlangshen::detail::fail(__FILE__, __LINE__, erl_os_.str());     \
    }                                                                    \
  } while (0)

#define ERL_FAIL(msg) ERL_CHECK(false, msg)
