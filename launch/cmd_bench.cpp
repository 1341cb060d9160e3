// `erlangshen bench --config FILE [key=value ...]`: times training steps on synthetic batches and reports
// tokens/s, achieved GFLOP/s and model-FLOPs utilisation against an SGEMM rate measured on the spot.
// With train.device=cuda the step runs on the GPU (runtime/backend.h) and MFU is against the GPU's dense bf16
// peak (runtime/cuda/device.h); peak device memory is reported.
#include <sys/resource.h>

#include <algorithm>
#include <fstream>
#include <cstdio>
#include <vector>

#include "launch/commands.h"
#include "launch/run_options.h"
#include "model/flops.h"
#include "model/trainer.h"
#include "runtime/backend.h"
#include "runtime/blas_select.h"
#if defined(ERLANGSHEN_HAVE_CUDA)
#include "runtime/cuda/context.h"
#include "runtime/cuda/device.h"
#include "runtime/cuda/memory.h"
#include "runtime/cuda/op_profiler.h"
#endif
#include "runtime/threading.h"
#include "runtime/timer.h"

namespace erlangshen::cli {
namespace {

// Median GFLOP/s of out (N, OC) = inp (N, C) @ W^T with the model's FFN shape, through our matmul kernel.
double measure_sgemm_gflops(int N, int C, int OC, int repeats) {
  std::vector<float> a(static_cast<size_t>(N) * C, 0.5f), w(static_cast<size_t>(OC) * C, 0.25f),
      out(static_cast<size_t>(N) * OC);
  std::vector<double> rates;
  for (int r = 0; r < repeats + 1; ++r) {
    Stopwatch sw;
    cpu::matmul_forward(out.data(), a.data(), w.data(), static_cast<const float*>(nullptr), N, C, OC);
    const double s = sw.seconds();
    if (r > 0) rates.push_back(2.0 * N * C * OC / s / 1e9);
  }
  std::sort(rates.begin(), rates.end());
  return rates[rates.size() / 2];
}

// Peak resident set of this process image: VmHWM (reset by execve). getrusage's ru_maxrss is not: it keeps the
// peak of the image before exec, e.g. a Python driver that forked us after importing torch.
double peak_rss_mib() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;  // "VmHWM:  123456 kB"
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss / 1024.0;
}

// GPU report: tokens/s, model TFLOP/s, MFU against the dense bf16 peak of the device ("unknown" when the name is
// not in the table), peak device memory (the trainer's allocations, and all in use incl. CUDA/cuBLASLt).
void print_gpu_report(const Config& config, const Backend& backend, int steps, double median, double tokens,
                      double flops, bool json) {
#if defined(ERLANGSHEN_HAVE_CUDA)
  const double tflops = flops / median / 1e12;
  const double peak = cuda::dense_bf16_peak_tflops(backend.gpu_name());
  const double mfu = peak > 0 ? tflops / peak : -1.0;
  int64_t free_b = 0, total_b = 0;
  cuda::device_memory_info(&free_b, &total_b);
  const double gib = 1024.0 * 1024.0 * 1024.0;
  const double alloc_gib = cuda::allocation_stats().peak / gib, used_gib = (total_b - free_b) / gib;
  const Backend::FusedAttention fused = backend.fused_attention(config);
  const bool forward_fused = fused.forward, backward_fused = fused.backward;
  if (json) {
    std::printf(
        "{\"config\": \"%s\", \"device\": \"%s\", \"micro_batch\": %d, \"seq_len\": %d, \"activations\": \"%s\", "
        "\"residual\": \"%s\", \"attention\": \"%s\", \"fused_attention_forward\": %s, "
        "\"fused_attention_backward\": %s, "
        "\"overlap_optimizer\": %s, \"step_s\": %.6f, "
        "\"tokens_per_s\": %.1f, \"tflops\": %.3f, \"peak_tflops\": %.0f, \"mfu\": %.4f, "
        "\"peak_alloc_gib\": %.3f, \"device_used_gib\": %.3f}\n",
        config.source.c_str(), backend.gpu_name().c_str(), config.train.micro_batch, config.train.seq_len,
        config.train.activations.c_str(), config.train.residual.c_str(), config.train.attention.c_str(),
        forward_fused ? "true" : "false", backward_fused ? "true" : "false",
        config.train.overlap_optimizer ? "true" : "false",
        median, tokens / median, tflops, peak, mfu, alloc_gib, used_gib);
    return;
  }
  std::printf("bench %s: %s, micro_batch %d x seq %d, %s activations, %s residual, %s attention%s%s, optimizer %s, "
              "%d timed steps\n",
              config.source.c_str(), backend.describe().c_str(), config.train.micro_batch, config.train.seq_len,
              config.train.activations.c_str(), config.train.residual.c_str(), config.train.attention.c_str(),
              forward_fused ? " (forward fused)" : "", backward_fused ? " (backward fused)" : "",
              config.train.overlap_optimizer ? "overlapped" : "in line", steps);
  std::printf("  step time (median)   %.4f s\n", median);
  std::printf("  tokens/s             %.1f\n", tokens / median);
  std::printf("  model TFLOP/s        %.2f\n", tflops);
  if (peak > 0) std::printf("  MFU                  %.1f%%  (dense bf16 peak %.0f TFLOP/s)\n", 100.0 * mfu, peak);
  else std::printf("  MFU                  unknown (no dense bf16 peak for this GPU name)\n");
  std::printf("  peak device memory   %.2f GiB allocated by the trainer, %.2f GiB in use on the device\n", alloc_gib,
              used_gib);
#else
  throw Error("bench: no CUDA backend in this build");
#endif
}

}  // namespace

// --profile (CUDA): one more step with a CUDA event around every op (runtime/cuda/op_profiler.h), after the timed
// steps so that they carry none; GPU time per op name, per step, largest first, and what the ops leave of the step.
void print_op_profile(PretrainTrainer& trainer, const Backend& backend) {
#if defined(ERLANGSHEN_HAVE_CUDA)
  auto* ctx = static_cast<cuda::Context*>(backend.exec().backend_context);
  cuda::OpProfiler profiler(ctx->stream());
  struct Attached {  // the profiler is attached for this one step, also when it throws
    cuda::Context* ctx;
    ~Attached() { ctx->set_profiler(nullptr); }
  } attached{ctx};
  ctx->set_profiler(&profiler);
  const StepReport r = trainer.train_step();
  const cuda::OpProfiler::Profile profile = profiler.collect();
  const std::vector<cuda::OpProfiler::Row>& rows = profile.ops;
  double total = 0.0;
  for (const auto& row : rows) total += row.ms;
  const double step_ms = 1e3 * r.step_seconds;
  std::printf("  GPU time per op, one profiled step (%.1f ms wall; the events add a little):\n", step_ms);
  std::printf("    %-40s %7s %10s %7s\n", "op", "calls", "ms", "share");
  for (const auto& row : rows)
    std::printf("    %-40s %7lld %10.3f %6.1f%%\n", row.name.c_str(), static_cast<long long>(row.calls), row.ms,
                100.0 * row.ms / step_ms);
  std::printf("    %-40s %7s %10.3f %6.1f%%\n", "(all ops)", "", total, 100.0 * total / step_ms);
  if (trainer.overlaps_optimizer())
    std::printf("    (the AdamW step runs on its own stream beside the next forward, train.overlap_optimizer: not listed)\n");
  // Every cuBLASLt GEMM on its own events: where the tensor cores' rate is lost (largest first; the rest summed).
  std::printf("  GPU time per GEMM shape (cuBLAS's transposes, m x n x k, A,B->C types, epilogue; +C: accumulates):\n");
  std::printf("    %-72s %6s %9s %7s\n", "GEMM", "calls", "ms", "TFLOP/s");
  double gemm_ms = 0.0, gemm_flops = 0.0, rest_ms = 0.0, rest_flops = 0.0;
  constexpr size_t kListed = 30;
  for (size_t i = 0; i < profile.gemms.size(); ++i) {
    const auto& g = profile.gemms[i];
    gemm_ms += g.ms;
    gemm_flops += g.flops;
    if (i >= kListed) {
      rest_ms += g.ms;
      rest_flops += g.flops;
      continue;
    }
    std::printf("    %-72s %6lld %9.3f %7.1f\n", g.name.c_str(), static_cast<long long>(g.calls), g.ms,
                g.flops / std::max(1e-9, g.ms) * 1e-9);
  }
  if (profile.gemms.size() > kListed)
    std::printf("    %-72s %6s %9.3f %7.1f\n", "(the other shapes)", "", rest_ms, rest_flops / std::max(1e-9, rest_ms) * 1e-9);
  std::printf("    %-72s %6zu %9.3f %7.1f\n", "(all GEMMs)", profile.gemms.size(), gemm_ms,
              gemm_flops / std::max(1e-9, gemm_ms) * 1e-9);
#else
  (void)trainer, (void)backend;
#endif
}

void register_bench(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("bench", "Time training steps: tokens/s, GFLOP/s, model-FLOPs utilisation");
  auto opts = add_run_options(cmd);
  auto steps = std::make_shared<int>(10);
  auto warmup = std::make_shared<int>(2);
  auto json_out = std::make_shared<bool>(false);
  auto largest_batch = std::make_shared<bool>(false);
  auto profile = std::make_shared<bool>(false);
  cmd->add_option("--steps", *steps, "timed steps (median reported)")->check(CLI::PositiveNumber);
  cmd->add_option("--warmup", *warmup, "untimed steps first")->check(CLI::NonNegativeNumber);
  cmd->add_flag("--json", *json_out, "print one JSON line instead of the table");
  cmd->add_flag("--profile", *profile,
                "train.device=cuda: then one more step with the GPU time of every op (CUDA events), per op name");
  cmd->add_flag("--largest-micro-batch", *largest_batch,
                "train.device=cuda: time the largest micro-batch whose device memory plan fits the free GPU memory "
                "(overrides train.micro_batch)");
  cmd->callback([=, &exit_code] {
    Config config = opts->load();
    config.train.steps = *steps + *warmup;
    config.train.warmup_steps = 0;
    const int threads = set_compute_threads(config.train.threads);
    Logger log;
    SelfCommunicator tp("tp"), dp("dp");
    Backend backend(config);
    if (*profile && !backend.cuda())
      throw Error("bench --profile needs train.device=cuda (it times GPU ops with CUDA events)");
    if (*largest_batch) {
      if (!backend.cuda()) throw Error("bench --largest-micro-batch needs train.device=cuda (it sizes GPU memory)");
      const int fit = largest_device_micro_batch(config);
      if (fit < 1)
        throw Error("bench --largest-micro-batch: not even micro-batch 1 fits at seq " +
                    std::to_string(config.train.seq_len) + "; try train.recompute=full");
      config.train.micro_batch = fit;
      if (!*json_out) std::printf("bench: largest micro-batch that fits the device memory plan: %d\n", fit);
    }
    SyntheticDataSource data(config.train.micro_batch, config.train.grad_accum, config.train.seq_len,
                             config.model.vocab_size, config.data.mask_prob, config.train.seed, 0, true);
    PretrainTrainer trainer(config, TrainerGroups{&tp, &dp}, data, log, backend.exec());
    const int N = config.train.micro_batch * config.train.seq_len;
    // The reference rate is measured before and after the timed steps (10 calls each, median) and the higher one
    // is used: one slow measurement (a cold start, a noisy neighbour) must not inflate the MFU.
    auto sgemm_rate = [&] { return measure_sgemm_gflops(N, config.model.hidden, config.model.ffn, 10); };
    double gemm_rate = backend.cuda() ? 0.0 : sgemm_rate();
    std::vector<double> secs, flops;
    for (int i = 0; i < *warmup + *steps; ++i) {
      StepReport r = trainer.train_step();
      if (i < *warmup) continue;
      secs.push_back(r.step_seconds);
      const double masked = config.data.mask_prob * r.tokens;  // synthetic batches mask mask_prob of tokens
      flops.push_back(training_flops(config.model, config.train.seq_len, r.tokens, masked,
                                     config.train.micro_batch * config.train.grad_accum));
    }
    std::vector<double> sorted = secs;
    std::sort(sorted.begin(), sorted.end());
    const double median = sorted[sorted.size() / 2];
    const double tokens = static_cast<double>(config.train.micro_batch) * config.train.grad_accum * config.train.seq_len;
    if (backend.cuda()) {
      print_gpu_report(config, backend, *steps, median, tokens, flops[0], *json_out);
      if (*profile) print_op_profile(trainer, backend);
      exit_code = kExitOk;
      return;
    }
    gemm_rate = std::max(gemm_rate, sgemm_rate());
    const double gflops = flops[0] / median / 1e9;
    const double mfu = gflops / gemm_rate;
    if (*json_out) {
      std::printf(
          "{\"config\": \"%s\", \"blas\": \"%s\", \"threads\": %d, \"micro_batch\": %d, \"seq_len\": %d, \"step_s\": %.6f, "
          "\"tokens_per_s\": %.1f, \"gflops\": %.2f, \"sgemm_gflops\": %.2f, \"mfu_vs_sgemm\": %.4f, \"peak_rss_mib\": %.1f}\n",
          config.source.c_str(), blas_core_name().c_str(), threads, config.train.micro_batch, config.train.seq_len,
          median, tokens / median,
          gflops, gemm_rate, mfu, peak_rss_mib());
    } else {
      std::printf("bench %s: %d threads (OpenBLAS %s), micro_batch %d x seq %d, %d timed steps\n",
                  config.source.c_str(), threads, blas_core_name().c_str(), config.train.micro_batch,
                  config.train.seq_len, *steps);
      std::printf("  step time (median)   %.4f s\n", median);
      std::printf("  tokens/s             %.1f\n", tokens / median);
      std::printf("  model GFLOP/s        %.2f\n", gflops);
      std::printf("  SGEMM GFLOP/s        %.2f  (measured now, %d x %d x %d, best of the medians before/after)\n",
                  gemm_rate, N, config.model.hidden, config.model.ffn);
      std::printf("  MFU vs SGEMM         %.1f%%\n", 100.0 * mfu);
      std::printf("  peak RSS             %.1f MiB\n", peak_rss_mib());
    }
    exit_code = kExitOk;
  });
}

}  // namespace erlangshen::cli
