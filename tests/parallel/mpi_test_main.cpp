// main() of the multi-rank gtest binary, run as `mpiexec -np N parallel_mpi_tests`: every rank runs every
// test; rank 0 prints the usual output, other ranks print only their failures (prefixed with the rank); the
// exit code is non-zero when any rank failed.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cstdio>

#include "parallel/mpi_communicator.h"
#include "parallel_test_util.h"
#include "runtime/threading.h"

namespace erlangshen::testing {

namespace {
MpiSession* g_session = nullptr;  // test harness only: the session outlives every test

class RankFailurePrinter : public ::testing::EmptyTestEventListener {
 public:
  explicit RankFailurePrinter(int rank) : rank_(rank) {}
  void OnTestPartResult(const ::testing::TestPartResult& r) override {
    if (r.failed())
      std::fprintf(stderr, "[rank %d] %s:%d: failure\n%s\n", rank_, r.file_name() ? r.file_name() : "?",
                   r.line_number(), r.summary());
  }

 private:
  int rank_;
};
}  // namespace

MpiSession& mpi_session() { return *g_session; }

}  // namespace erlangshen::testing

int main(int argc, char** argv) {
  int failed = 0;
  {
    erlangshen::MpiSession session(&argc, &argv);
    erlangshen::testing::g_session = &session;
    erlangshen::set_compute_threads(1);  // ranks share the cores
    ::testing::InitGoogleTest(&argc, argv);
    if (session.world_rank() != 0) {
      auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
      delete listeners.Release(listeners.default_result_printer());
      listeners.Append(new erlangshen::testing::RankFailurePrinter(session.world_rank()));
    }
    int mine = RUN_ALL_TESTS() != 0 ? 1 : 0;
    MPI_Allreduce(&mine, &failed, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (session.world_rank() == 0 && failed) std::fprintf(stderr, "parallel_mpi_tests: a rank failed\n");
  }
  return failed;
}
