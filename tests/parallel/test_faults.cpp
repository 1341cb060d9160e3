// A rank that hangs or dies mid-step must take the whole job down within parallel.timeout_s, non-zero, with
// a message naming the rank, the collective and its byte count (never a silent hang). Runs
// `mpiexec -np 2 parallel_fault_probe MODE TIMEOUT` and watches it from outside.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <regex>
#include <string>

#include "runtime/timer.h"

namespace erlangshen {
namespace {

struct JobResult {
  int exit_code = -1;
  double seconds = 0;
  std::string output;
};

JobResult run_probe(const std::string& mode, double timeout_s) {
  setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
  setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
  setenv("OMPI_MCA_mpi_yield_when_idle", "1", 1);
  // `timeout` is only the test's own guard against a hang (it would show as exit code 137 and a long time).
  const std::string cmd = std::string("timeout -s KILL 120 ") + ERLANGSHEN_MPIEXEC + " --oversubscribe -np 2 " +
                          ERLANGSHEN_FAULT_PROBE + " " + mode + " " + std::to_string(timeout_s) + " 2>&1";
  JobResult r;
  Stopwatch sw;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
  const int status = pclose(p);
  r.seconds = sw.seconds();
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

TEST(Faults, HealthyJobSucceeds) {
  JobResult r = run_probe("none", 30);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("probe finished 20 steps"), std::string::npos) << r.output;
}

TEST(Faults, HungRankAbortsWithTheNamedCollective) {
  const double timeout = 3;
  JobResult r = run_probe("hang", timeout);
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_GE(r.seconds, timeout - 0.5) << r.output;
  EXPECT_LT(r.seconds, timeout + 20) << r.output;
  // Rank 0 entered step 3's first collective (the global masked-token / sample counts) and waited in vain.
  const std::regex message(
      "erlangshen: rank 0: group 'dp' \\(rank 0/2\\): all_reduce\\(sum\\) of 16 bytes \\(2 x float64\\) did not "
      "complete within 3 s \\(parallel.timeout_s\\)");
  EXPECT_TRUE(std::regex_search(r.output, message)) << r.output;
}

TEST(Faults, KilledRankTakesTheJobDown) {
  const double timeout = 3;
  JobResult r = run_probe("kill", timeout);
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_LT(r.seconds, timeout + 20) << r.output;
  // Either our timeout fired first (rank 0 names the collective) or mpirun saw rank 1 die and said so.
  const std::regex ours("erlangshen: rank 0: group 'dp' \\(rank 0/2\\): .* did not complete within 3 s");
  const std::regex launcher("rank 1 .*(exited on signal 9|Killed)", std::regex::extended);
  EXPECT_TRUE(std::regex_search(r.output, ours) || std::regex_search(r.output, launcher)) << r.output;
  std::printf("killed rank: job exited %d after %.2f s\n", r.exit_code, r.seconds);
}

}  // namespace
}  // namespace erlangshen
