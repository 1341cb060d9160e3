#include "parallel/gpu_placement.h"

#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace erlangshen {

namespace {
constexpr size_t kSlot = 128;  // bytes per rank in the all-gather, NUL included
}

std::string gpu_placement(const std::string& bus_id) {
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0) std::strcpy(host, "unknown-host");
  return std::string(host) + "/" + bus_id;
}

std::vector<std::string> gather_placements(Communicator& world, const std::string& mine) {
  const int p = world.size();
  std::vector<uint8_t> slots(kSlot * static_cast<size_t>(p), 0);
  const size_t n = std::min(mine.size(), kSlot - 1);
  std::memcpy(slots.data() + kSlot * static_cast<size_t>(world.rank()), mine.data(), n);
  world.all_gather(slots.data(), std::vector<size_t>(static_cast<size_t>(p), kSlot));
  std::vector<std::string> out;
  for (int r = 0; r < p; ++r) out.emplace_back(reinterpret_cast<const char*>(slots.data() + kSlot * r));
  return out;
}

std::string shared_gpu_conflict(const std::vector<std::string>& placements) {
  for (size_t a = 0; a < placements.size(); ++a)
    for (size_t b = a + 1; b < placements.size(); ++b) {
      if (placements[a] != placements[b]) continue;
      const std::string& pl = placements[a];
      const size_t slash = pl.rfind('/');
      const std::string host = pl.substr(0, slash), bus = slash == std::string::npos ? "" : pl.substr(slash + 1);
      return "world ranks " + std::to_string(a) + " and " + std::to_string(b) + " both run on GPU " + bus +
             " of host " + host + " (" + std::to_string(placements.size()) +
             " ranks): train.device=cuda needs one GPU per rank. Start at most as many ranks per node as it has "
             "GPUs (mpirun -npernode <gpus per node>, srun --ntasks-per-node=<gpus per node> --gpus-per-task=1)";
    }
  return "";
}

}  // namespace erlangshen
