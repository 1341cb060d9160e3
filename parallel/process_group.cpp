#include "parallel/process_group.h"

#include <mpi.h>

#include <cstdlib>

#include "parallel/mpi_communicator.h"
#include "runtime/check.h"

namespace erlangshen {

LayoutCoords layout_coords(int world_rank, int tp, int dp) {
  ERL_CHECK(tp > 0 && dp > 0 && world_rank >= 0 && world_rank < tp * dp,
            "rank " << world_rank << " is outside a layout of tp " << tp << " x dp " << dp);
  return LayoutCoords{world_rank % tp, world_rank / tp};
}

std::vector<int> tp_group_ranks(int dp_rank, int tp, int dp) {
  std::vector<int> r;
  for (int t = 0; t < tp; ++t) r.push_back(dp_rank * tp + t);
  return r;
}

std::vector<int> dp_group_ranks(int tp_rank, int tp, int dp) {
  std::vector<int> r;
  for (int d = 0; d < dp; ++d) r.push_back(d * tp + tp_rank);
  return r;
}

int local_rank_from_env(const std::function<const char*(const char*)>& getenv_fn) {
  for (const char* v : {"OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", "MPI_LOCALRANKID", "MV2_COMM_WORLD_LOCAL_RANK",
                        "PMI_LOCAL_RANK", "LOCAL_RANK"}) {
    const char* s = getenv_fn(v);
    if (s == nullptr || *s == '\0') continue;
    char* end = nullptr;
    const long r = std::strtol(s, &end, 10);
    if (*end != '\0' || r < 0) throw Error(std::string("environment variable ") + v + "='" + s + "' is not a rank");
    return static_cast<int>(r);
  }
  return -1;
}

void check_layout(const Config& config, int world_size) {
  const int tp = config.parallel.tp, dp = config.parallel.dp;
  auto fail = [&](const std::string& msg) { throw Error(config.source + ": " + msg); };
  if (tp * dp != world_size)
    fail("parallel.tp (" + std::to_string(tp) + ") x parallel.dp (" + std::to_string(dp) + ") = " +
         std::to_string(tp * dp) + " must equal the number of ranks (" + std::to_string(world_size) +
         "); start the job with mpirun -np " + std::to_string(tp * dp) + " or change the keys");
  if (config.model.heads % tp != 0)
    fail("parallel.tp (" + std::to_string(tp) + ") must divide model.heads (" + std::to_string(config.model.heads) + ")");
  if (config.model.ffn % tp != 0)
    fail("parallel.tp (" + std::to_string(tp) + ") must divide model.ffn (" + std::to_string(config.model.ffn) + ")");
  const int padded = config.model.padded_vocab(tp);
  if (padded % tp != 0)
    fail("parallel.tp (" + std::to_string(tp) + ") must divide the padded vocabulary (" + std::to_string(padded) +
         " rows from model.vocab_size and model.vocab_pad_multiple)");
}

std::string ProcessGroups::layout() const { return "tp" + std::to_string(tp) + " x dp" + std::to_string(dp); }

ProcessGroups make_self_groups() {
  ProcessGroups g;
  g.world = std::make_unique<SelfCommunicator>("world");
  g.tp_group = std::make_unique<SelfCommunicator>("tp");
  g.dp_group = std::make_unique<SelfCommunicator>("dp");
  const int local = local_rank_from_env([](const char* v) { return std::getenv(v); });
  g.local_rank = local < 0 ? 0 : local;
  return g;
}

ProcessGroups make_mpi_groups(MpiSession& session, const Config& config) {
  check_layout(config, session.world_size());
  ProcessGroups g;
  g.world_rank = session.world_rank();
  g.world_size = session.world_size();
  g.tp = config.parallel.tp;
  g.dp = config.parallel.dp;
  const LayoutCoords c = layout_coords(g.world_rank, g.tp, g.dp);
  g.tp_rank = c.tp_rank;
  g.dp_rank = c.dp_rank;
  const double timeout = config.parallel.timeout_s;
  MPI_Comm world = MPI_COMM_NULL, tp = MPI_COMM_NULL, dp = MPI_COMM_NULL;
  {
    std::lock_guard<std::mutex> lock(session.mutex());
    MPI_Comm_dup(MPI_COMM_WORLD, &world);
    // TP group: same dp_rank, ordered by tp_rank; DP group: same tp_rank, ordered by dp_rank.
    MPI_Comm_split(MPI_COMM_WORLD, g.dp_rank, g.tp_rank, &tp);
    MPI_Comm_split(MPI_COMM_WORLD, g.tp_rank, g.dp_rank, &dp);
  }
  g.world = std::make_unique<MpiCommunicator>(session, world, "world", timeout);
  g.tp_group = std::make_unique<MpiCommunicator>(session, tp, "tp", timeout);
  g.dp_group = std::make_unique<MpiCommunicator>(session, dp, "dp", timeout);
  ERL_CHECK(g.tp_group->rank() == g.tp_rank && g.dp_group->rank() == g.dp_rank, "MPI_Comm_split ranked the groups unexpectedly");
  int local = local_rank_from_env([](const char* v) { return std::getenv(v); });
  if (local < 0) {  // no launcher variable: rank within the node's shared-memory group
    std::lock_guard<std::mutex> lock(session.mutex());
    MPI_Comm node;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, g.world_rank, MPI_INFO_NULL, &node);
    MPI_Comm_rank(node, &local);
    MPI_Comm_free(&node);
  }
  g.local_rank = local;
  return g;
}

}  // namespace erlangshen
