// One GPU per rank: NCCL cannot run two ranks of a communicator on the same physical GPU (ncclCommInitRank fails
// with "Duplicate GPU detected"), and two ranks sharing a GPU would also share its memory. Before the NCCL groups
// are built every rank publishes where it runs ("host/PCI bus id") and a launch that put two ranks on one GPU is
// refused with the ranks, the host and the GPU named, on every rank alike.
#pragma once
#include <string>
#include <vector>

#include "parallel/communicator.h"

namespace erlangshen {

// "<host name>/<bus id>" of this process's GPU.
std::string gpu_placement(const std::string& bus_id);

// Every world rank's placement, in world rank order (an all-gather over `world`; at most 127 bytes each, longer
// ones are cut).
std::vector<std::string> gather_placements(Communicator& world, const std::string& mine);

// "" when all placements differ; otherwise a message naming the first two world ranks that share a GPU and how
// to launch one rank per GPU.
std::string shared_gpu_conflict(const std::vector<std::string>& placements);

}  // namespace erlangshen
