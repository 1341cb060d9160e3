#include "launch/device_groups.h"

#include "parallel/gpu_placement.h"
#include "runtime/check.h"
#if defined(ERLANGSHEN_HAVE_NCCL)
#include "parallel/nccl_communicator.h"
#endif

namespace erlangshen {

struct DeviceGroups::Impl {
#if defined(ERLANGSHEN_HAVE_NCCL)
  NcclGroups nccl;
#endif
  bool active = false;
};

DeviceGroups::DeviceGroups(const Config& config, const ProcessGroups& groups, const Backend& backend,
                           MpiSession* session)
    : impl_(std::make_unique<Impl>()) {
  if (!backend.cuda() || groups.world_size == 1) return;
  // Every rank takes part in the placement check, so a refusal is the same on all of them.
  const std::string conflict =
      shared_gpu_conflict(gather_placements(*groups.world, gpu_placement(backend.gpu_bus_id())));
  if (!conflict.empty()) throw Error(config.source + ": " + conflict);
#if defined(ERLANGSHEN_HAVE_NCCL)
  impl_->nccl = make_nccl_groups(groups, config.parallel.timeout_s, session);
  void* stream = backend.exec().stream;
  for (NcclCommunicator* c : {impl_->nccl.tp.get(), impl_->nccl.dp.get()})
    c->set_compute_stream(static_cast<cudaStream_t>(stream));
  impl_->active = true;
#else
  (void)session;
  throw Error(config.source + ": train.device=cuda with " + std::to_string(groups.world_size) +
              " ranks needs NCCL, and this build has none (install NCCL, rebuild with -DERLANGSHEN_CUDA=ON)");
#endif
}

DeviceGroups::~DeviceGroups() = default;

TrainerGroups DeviceGroups::attach(TrainerGroups host) const {
#if defined(ERLANGSHEN_HAVE_NCCL)
  if (impl_->active) {
    host.device_tp = impl_->nccl.tp.get();
    host.device_dp = impl_->nccl.dp.get();
  }
#endif
  return host;
}

std::string DeviceGroups::describe() const { return impl_->active ? "NCCL device groups" : ""; }

}  // namespace erlangshen
