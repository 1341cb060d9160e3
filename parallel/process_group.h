// Process groups (Megatron's order, DESIGN §3): the world of N = tp x dp ranks is cut into
//   TP groups of consecutive ranks (TP innermost):  {d*tp, ..., d*tp + tp-1}   for d in [0, dp)
//   DP groups across them:                          {t, t + tp, ..., t + (dp-1)*tp} for t in [0, tp)
// so world rank w has tp_rank = w % tp and dp_rank = w / tp. The groups are built once by the launcher and
// passed explicitly to the code that uses them.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "parallel/communicator.h"
#include "runtime/config.h"

namespace erlangshen {

class MpiSession;

struct LayoutCoords {
  int tp_rank = 0;
  int dp_rank = 0;
};
LayoutCoords layout_coords(int world_rank, int tp, int dp);
// World ranks of the TP group of DP rank d, and of the DP group of TP rank t.
std::vector<int> tp_group_ranks(int dp_rank, int tp, int dp);
std::vector<int> dp_group_ranks(int tp_rank, int tp, int dp);

// Local rank (index of this process on its node, which selects the GPU) from the launcher's environment:
// OMPI_COMM_WORLD_LOCAL_RANK (Open MPI), SLURM_LOCALID (srun), MPI_LOCALRANKID (MPICH/Hydra),
// MV2_COMM_WORLD_LOCAL_RANK (MVAPICH), PMI_LOCAL_RANK, LOCAL_RANK. -1 when none is set.
int local_rank_from_env(const std::function<const char*(const char*)>& getenv_fn);

// Checks the layout against the job: parallel.tp x parallel.dp must equal the number of ranks, and tp must
// divide model.heads, model.ffn and the padded vocabulary. Throws Error naming the keys.
void check_layout(const Config& config, int world_size);

struct ProcessGroups {
  int world_rank = 0, world_size = 1, local_rank = 0;
  int tp = 1, dp = 1, tp_rank = 0, dp_rank = 0;
  std::unique_ptr<Communicator> world, tp_group, dp_group;
  std::string layout() const;  // "tp2 x dp2"
};

// One process: every group is a SelfCommunicator.
ProcessGroups make_self_groups();
// World from MPI, split into TP and DP groups per config.parallel (checked with check_layout); collectives
// time out after parallel.timeout_s.
ProcessGroups make_mpi_groups(MpiSession& session, const Config& config);

}  // namespace erlangshen
