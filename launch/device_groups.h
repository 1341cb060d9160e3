// The device groups of a training run (model/trainer.h TrainerGroups): with train.device=cuda and several ranks,
// NCCL communicators over the same TP / DP ranks as the MPI host groups, on the GPU the Backend selected for this
// rank and following the Backend's stream, built after checking that no two ranks share a GPU
// (parallel/gpu_placement.h). Otherwise there are none and the host groups serve (CPU memory is host memory).
#pragma once
#include <memory>
#include <string>

#include "model/trainer.h"
#include "parallel/process_group.h"
#include "runtime/backend.h"
#include "runtime/config.h"

namespace erlangshen {

class MpiSession;

class DeviceGroups {
 public:
  // Collective over the world when it builds NCCL groups. Throws Error when the build has no NCCL but the run
  // needs it, or when two ranks share a GPU.
  DeviceGroups(const Config& config, const ProcessGroups& groups, const Backend& backend, MpiSession* session);
  ~DeviceGroups();
  DeviceGroups(const DeviceGroups&) = delete;
  DeviceGroups& operator=(const DeviceGroups&) = delete;

  // `host` with device_tp / device_dp set when there are device groups.
  TrainerGroups attach(TrainerGroups host) const;
  // "NCCL device groups" or "" when the host groups serve.
  std::string describe() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace erlangshen
