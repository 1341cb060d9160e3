#include "runtime/backend.h"

#include "runtime/check.h"
#if defined(ERLANGSHEN_HAVE_CUDA)
#include "runtime/cuda/attention_fused_backward.h"
#include "runtime/cuda/attention_fused_forward.h"
#include "runtime/cuda/context.h"
#include "runtime/cuda/device.h"
#endif

namespace erlangshen {

struct Backend::Impl {
#if defined(ERLANGSHEN_HAVE_CUDA)
  std::unique_ptr<cuda::Context> context;
  int gpu = 0;
#endif
};

Backend::Backend(const std::string& device, int gpu, const std::string& source, const BackendOptions& choices)
    : impl_(std::make_unique<Impl>()) {
  const std::string where = source.empty() ? std::string("train.device") : source + ": train.device";
  if (device == "cpu") return;
  ERL_CHECK(device == "cuda", where << ": '" << device << "' is not one of: cpu, cuda");
#if defined(ERLANGSHEN_HAVE_CUDA)
  if (!cuda_available())
    throw Error(where + "=cuda but no CUDA GPU is visible (check nvidia-smi and CUDA_VISIBLE_DEVICES), or use "
                        "train.device=cpu");
  // The GPU of this rank: local rank modulo the visible devices (a launcher that leaves each rank one visible
  // GPU, like launch/bind-local-rank.sh, makes that device 0).
  gpu = gpu % cuda::device_count();
  cuda::ContextOptions options;
  options.device = gpu;
  options.math = cuda::MathMode::BF16;
  options.deterministic = choices.deterministic;
  options.backward_epilogues = choices.backward_epilogues;
  options.fused_attention_forward = choices.fused_attention_forward;
  options.fused_attention_backward = choices.fused_attention_backward;
  impl_->context = std::make_unique<cuda::Context>(options);
  impl_->gpu = gpu;
  exec_ = Exec{Device::CUDA, impl_->context->stream(), impl_->context.get()};
#else
  (void)gpu;
  (void)choices;
  throw Error(where + "=cuda but this build has no CUDA backend (rebuild with -DERLANGSHEN_CUDA=ON), or use "
                      "train.device=cpu");
#endif
}

Backend::~Backend() = default;

std::string Backend::describe() const {
#if defined(ERLANGSHEN_HAVE_CUDA)
  if (impl_->context)
    return "cuda: " + cuda::device_description(impl_->gpu) + ", " + cuda::math_mode_name(impl_->context->math()) +
           " GEMMs" + (impl_->context->deterministic() ? ", deterministic" : "");
#endif
  return "cpu";
}

std::string Backend::gpu_name() const {
#if defined(ERLANGSHEN_HAVE_CUDA)
  if (impl_->context) return cuda::device_name(impl_->gpu);
#endif
  return "";
}

Backend::FusedAttention Backend::fused_attention(const Config& config) const {
  FusedAttention f;
#if defined(ERLANGSHEN_HAVE_CUDA)
  const TrainConfig& t = config.train;
  if (!impl_->context || t.attention != "unfused" || t.activations != "bf16" || t.seq_len > 1024 ||
      !impl_->context->options().attention_saves_scores)
    return f;
  const cpu::AttentionShape shape{1, t.seq_len, 1, config.model.head_dim()};
  f.forward = impl_->context->options().fused_attention_forward && cuda::fused_attention_forward_supported(shape);
  f.backward = impl_->context->options().fused_attention_backward && cuda::fused_attention_backward_supported(shape);
#else
  (void)config;
#endif
  return f;
}

std::string Backend::gpu_bus_id() const {
#if defined(ERLANGSHEN_HAVE_CUDA)
  if (impl_->context) return cuda::device_pci_bus_id(impl_->gpu);
#endif
  return "";
}

}  // namespace erlangshen
