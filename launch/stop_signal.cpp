#include "launch/stop_signal.h"

#include <csignal>

namespace erlangshen::cli {
namespace {

// The only global mutable state of the program: written by the signal handler, read by the training loop.
volatile std::sig_atomic_t g_stop_signal = 0;

extern "C" void on_stop_signal(int sig) {
  if (g_stop_signal == 0) g_stop_signal = sig;
}

}  // namespace

void install_stop_signal_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;  // collectives and file I/O carry on; the loop looks at the flag between steps
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGUSR1, &sa, nullptr);
}

bool stop_requested() { return g_stop_signal != 0; }

int stop_signal_number() { return static_cast<int>(g_stop_signal); }

}  // namespace erlangshen::cli
