// Attention probe: the backend's attention (attention.cu: cuBLASLt products per head, S and P through memory)
// against the fused kernels (flash_attention.cu), forward and backward, and against its own forward in one kernel
// (ContextOptions::fused_attention_forward, attention_fused_forward.cu: the same saved state, so the same backward)
// and, where T <= 128, its backward in one kernel (ContextOptions::fused_attention_backward,
// attention_fused_backward.cu), on bf16 storage (train.activations=bf16)
// with dropout 0.1 and a few padded keys, at the model shapes:
//   1.3b   B x 512 tokens, 8 heads of 256          base   B x 128 tokens, 12 heads of 64
// Times are medians of --reps (CUDA events); TFLOP/s counts the model's attention FLOPs (forward 4 B T^2 C,
// backward 8 B T^2 C), not the flash backward's recomputation. Also prints how far apart the two outputs are
// (max |difference| / max |value| of out and dqkv): both round the same bf16 operands, so ~1e-2 at most.
//
//   erlangshen_attention_probe [--model 1.3b|base] [--batch B] [--reps R (default 10)]
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "runtime/act.h"
#include "runtime/check.h"
#include "runtime/cuda/common.cuh"
#include "runtime/cuda/attention_fused_backward.h"
#include "runtime/cuda/context.h"
#include "runtime/cuda/device.h"
#include "runtime/cuda/flash_attention.h"
#include "runtime/cuda/memory.h"
#include "tests/bench/gpu_tool_main.h"
#include "tests/bench/probe_util.cuh"

using namespace erlangshen;
using namespace erlangshen::cuda;
using erlangshen::bench::fill_bf16;
using erlangshen::bench::median_ms;
using erlangshen::bench::relative_gap;

namespace {

std::vector<float> host_bf16(const bf16* p, int64_t n) {
  std::vector<bf16> h(n);
  ERL_CUDA_CHECK(cudaMemcpy(h.data(), p, n * 2, cudaMemcpyDeviceToHost));
  std::vector<float> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = to_float(h[i]);
  return v;
}

int run(int argc, char** argv) {
  std::string model = "1.3b";
  int B = 0, reps = 10;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    ERL_CHECK(i + 1 < argc, "missing value after " << a);
    if (a == "--model")
      model = argv[++i];
    else if (a == "--batch")
      B = std::stoi(argv[++i]);
    else if (a == "--reps")
      reps = std::stoi(argv[++i]);
    else
      throw Error("unknown option " + a);
  }
  ERL_CHECK(model == "1.3b" || model == "base", "--model 1.3b | base");
  const bool big = model == "1.3b";
  const int T = big ? 512 : 128, NH = big ? 8 : 12, HS = big ? 256 : 64;
  if (B == 0) B = big ? 32 : 128;
  const int C = NH * HS;
  const int64_t N = int64_t(B) * T;
  const AttentionShape s{B, T, NH, HS, 0, 0, 0};
  DropoutSpec d;
  d.p = 0.1f;
  d.key = derive_key(7, RngPurpose::AttentionDropout, 1, 0, 0);

  ContextOptions o;
  o.math = MathMode::BF16;
  Context ctx(o);
  const Launch l(ctx.stream(), &ctx);
  cudaStream_t stream = static_cast<cudaStream_t>(ctx.stream());
  cudaDeviceProp prop{};
  ERL_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  const double peak = dense_bf16_peak_tflops(prop.name);

  ContextOptions fo = o;
  fo.fused_attention_forward = true;
  Context fused_ctx(fo);
  const Launch fl(ctx.stream(), &fused_ctx);  // the same stream: one event timeline
  ContextOptions fo_other = fo;  // the fused forward with the other block size than its choice (4 <-> 8 warps)
  fo_other.fused_attention_forward_warps = HS == 256 ? 4 : 8;
  Context fused_other_ctx(fo_other);
  const Launch fl_other(ctx.stream(), &fused_other_ctx);
  ContextOptions fbo = fo;  // the fused forward's state, the fused backward (T <= 128 only)
  fbo.fused_attention_backward = true;
  Context fused_bwd_ctx(fbo);
  const Launch fbl(ctx.stream(), &fused_bwd_ctx);
  const bool bwd_fusable = fused_attention_backward_supported(s);
  DeviceBuffer qkv(2 * N * 3 * C, "qkv"), dout(2 * N * C, "dout"), out_a(2 * N * C, "out"), out_f(2 * N * C, "out"),
      out_u(2 * N * C, "out"), probs_u(4 * int64_t(B) * NH * T * T, "probs"),
      dqkv_a(2 * N * 3 * C, "dqkv"), dqkv_f(2 * N * 3 * C, "dqkv"), dqkv_u(2 * N * 3 * C, "dqkv"),
      valid(N, "key_valid");
  DeviceBuffer probs(4 * int64_t(B) * NH * T * T, "probs"), stats(8 * int64_t(B) * NH * T, "stats");
  DeviceBuffer scratch_a(4 * cuda::attention_scratch_elems(s), "attention scratch"),
      scratch_f(4 * flash_attention_scratch_elems(s), "flash scratch");
  fill_bf16<<<2048, 256, 0, stream>>>(qkv.as<__nv_bfloat16>(), N * 3 * C, 1.0f, 0.0f, 1);
  fill_bf16<<<2048, 256, 0, stream>>>(dout.as<__nv_bfloat16>(), N * C, 1.0f, 0.0f, 2);
  std::vector<uint8_t> mask(N, 1);
  for (int b = 0; b < B; ++b)
    for (int t = T - (b * 13) % 32; t < T; ++t) mask[int64_t(b) * T + t] = 0;
  ERL_CUDA_CHECK(cudaMemcpy(valid.as<void>(), mask.data(), N, cudaMemcpyHostToDevice));
  ERL_CUDA_CHECK(cudaStreamSynchronize(stream));
  ERL_CHECK(flash_attention_supported(l, s), "flash attention does not run this shape on " << prop.name);

  auto act = [](DeviceBuffer& b) { return Act<float>::half(b.as<bf16>()); };
  auto cact = [](DeviceBuffer& b) { return Act<const float>::half(b.as<bf16>()); };
  const uint8_t* kv = valid.as<uint8_t>();
  const double fa = median_ms(stream, reps, [&] {
    attention_forward(l, act(out_a), probs.as<float>(), scratch_a.as<float>(), cact(qkv), kv, s, d);
  });
  const double ba = median_ms(stream, reps, [&] {
    attention_backward(l, act(dqkv_a), scratch_a.as<float>(), cact(dout), cact(qkv), probs.as<float>(), kv, s, d);
  });
  const double fu = median_ms(stream, reps, [&] {
    attention_forward(fl, act(out_u), probs_u.as<float>(), scratch_a.as<float>(), cact(qkv), kv, s, d);
  });
  const double fu_other = median_ms(stream, reps, [&] {
    attention_forward(fl_other, act(out_u), probs_u.as<float>(), scratch_a.as<float>(), cact(qkv), kv, s, d);
  });
  const double bu = !bwd_fusable ? -1.0 : median_ms(stream, reps, [&] {
    attention_backward(fbl, act(dqkv_u), scratch_a.as<float>(), cact(dout), cact(qkv), probs_u.as<float>(), kv, s, d);
  });
  const double ff = median_ms(stream, reps, [&] {
    flash_attention_forward(l, act(out_f), stats.as<float>(), scratch_f.as<float>(), cact(qkv), kv, s, d);
  });
  const double bf = median_ms(stream, reps, [&] {
    flash_attention_backward(l, act(dqkv_f), scratch_f.as<float>(), cact(dout), cact(out_f), cact(qkv),
                             stats.as<float>(), kv, s, d);
  });
  ERL_CUDA_CHECK(cudaStreamSynchronize(stream));
  const double gap_out = relative_gap(host_bf16(out_f.as<bf16>(), N * C), host_bf16(out_a.as<bf16>(), N * C));
  const double gap_fused = relative_gap(host_bf16(out_u.as<bf16>(), N * C), host_bf16(out_a.as<bf16>(), N * C));
  const double gap_fused_dqkv =
      bwd_fusable ? relative_gap(host_bf16(dqkv_u.as<bf16>(), N * 3 * C), host_bf16(dqkv_a.as<bf16>(), N * 3 * C))
                  : 0.0;
  const double gap_dqkv =
      relative_gap(host_bf16(dqkv_f.as<bf16>(), N * 3 * C), host_bf16(dqkv_a.as<bf16>(), N * 3 * C));
  const double fwd_flops = 4.0 * B * double(T) * T * C, bwd_flops = 2 * fwd_flops;
  std::printf("device: %s  model: %s  B=%d T=%d NH=%d HS=%d  dropout 0.1, bf16 storage, reps %d (median)\n", prop.name,
              model.c_str(), B, T, NH, HS, reps);
  std::printf("%-22s %10s %10s %10s %10s\n", "", "fwd ms", "bwd ms", "fwd TF/s", "bwd TF/s");
  std::printf("%-22s %10.3f %10.3f %10.1f %10.1f\n", "attention.cu (cuBLASLt)", fa, ba, fwd_flops / fa / 1e9,
              bwd_flops / ba / 1e9);
  std::printf("%-22s %10.3f %10.3f %10.1f %10.1f\n", "flash_attention.cu", ff, bf, fwd_flops / ff / 1e9,
              bwd_flops / bf / 1e9);
  std::printf("%-22s %10.3f %10s %10.1f %10s\n", "fused forward", fu, "(same)", fwd_flops / fu / 1e9, "");
  std::printf("%-22s %10.3f %10s %10.1f %10s\n", HS == 256 ? "  with 4-warp blocks" : "  with 8-warp blocks",
              fu_other, "", fwd_flops / fu_other / 1e9, "");
  if (fu_other < fu)
    std::printf("the other block size is faster: change warps_for in runtime/cuda/attention_fused_forward.cu\n");
  std::printf("fused forward / cuBLASLt forward time: %.2f (out apart %.2e): %s\n", fu / fa, gap_fused,
              fu < fa ? "faster: set train.fused_attention_forward=true (the default in runtime/config.h)"
                      : "slower: keep it off");
  if (bwd_fusable) {
    std::printf("%-22s %10s %10.3f %10s %10.1f\n", "fused backward", "", bu, "", bwd_flops / bu / 1e9);
    std::printf("fused backward / cuBLASLt backward time: %.2f (dqkv apart %.2e): %s\n", bu / ba, gap_fused_dqkv,
                bu < ba ? "faster: set train.fused_attention_backward=true (the default in runtime/config.h)"
                        : "slower: keep it off");
  } else {
    std::printf("fused backward: not taken at T %d, head dim %d (T <= 128 only)\n", T, HS);
  }
  std::printf("flash / cuBLASLt time: forward %.2f, backward %.2f, both %.2f;  outputs apart: out %.2e, dqkv %.2e\n",
              ff / fa, bf / ba, (ff + bf) / (fa + ba), gap_out, gap_dqkv);
  std::printf(
      "ATTENTION_PROBE_JSON {\"device\":\"%s\",\"model\":\"%s\",\"batch\":%d,\"cublas_fwd_ms\":%.3f,"
      "\"cublas_bwd_ms\":%.3f,\"fused_fwd_ms\":%.3f,\"fused_fwd_other_warps_ms\":%.3f,\"gap_fused_out\":%.3e,"
      "\"fused_bwd_ms\":%.3f,\"gap_fused_dqkv\":%.3e,"
      "\"flash_fwd_ms\":%.3f,\"flash_bwd_ms\":%.3f,\"gap_out\":%.3e,\"gap_dqkv\":%.3e,"
      "\"peak_tflops\":%.0f}\n",
      prop.name, model.c_str(), B, fa, ba, fu, fu_other, gap_fused, bu, gap_fused_dqkv, ff, bf, gap_out, gap_dqkv,
      peak);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return erlangshen::bench::gpu_tool_main("erlangshen_attention_probe", [&] { return run(argc, argv); });
}
