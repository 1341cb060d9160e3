// LayerNorm backward probe: the encoder's LayerNorm backward with its dropout epilogue (layernorm.cu,
// layernorm_backward_dropout) at the 1.3B model's shape, in its two forms:
//   two-pass   the rows kernel (dinp, dx) and then the column pass over dy and x for dw and db (the default)
//   one-pass   ContextOptions::fused_layernorm_columns: dw and db summed in the rows' pass, dy and x read once
// with bf16 dy (the dgrad GEMM's output), bf16 x and dinp (train.residual=bf16) and bf16 dx, dropout 0.1. Times are
// medians of --reps (CUDA events); GB/s counts the bytes each form must move (two-pass: dy, x twice, dinp read and
// written, dx; one-pass: dy and x once). Also checks the two forms agree (dinp and dx bit for bit, dw and db within
// fp32 rounding), and prints which is faster: the device run that decides fused_layernorm_columns' default.
//
//   erlangshen_layernorm_probe [--tokens N (default 32768)] [--hidden C (default 2048)] [--reps R (default 20)]
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
#include "runtime/cuda/context.h"
#include "runtime/cuda/device.h"
#include "runtime/cuda/kernels.h"
#include "runtime/cuda/memory.h"
#include "tests/bench/gpu_tool_main.h"
#include "tests/bench/probe_util.cuh"

using namespace erlangshen;
using namespace erlangshen::cuda;
using namespace erlangshen::bench;

namespace {

template <class T>
std::vector<T> to_host(const DeviceBuffer& b, int64_t n) {
  std::vector<T> h(n);
  ERL_CUDA_CHECK(cudaMemcpy(h.data(), b.as<void>(), sizeof(T) * n, cudaMemcpyDeviceToHost));
  return h;
}

int run(int argc, char** argv) {
  int64_t N = 32768;
  int C = 2048, reps = 20;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    ERL_CHECK(i + 1 < argc, "missing value after " << a);
    if (a == "--tokens") N = std::stoll(argv[++i]);
    else if (a == "--hidden") C = std::stoi(argv[++i]);
    else if (a == "--reps") reps = std::stoi(argv[++i]);
    else throw Error("unknown option " + a);
  }
  ERL_CHECK(N > 0 && C % 4 == 0 && C <= 2048 && reps > 0, "--tokens > 0, --hidden a multiple of 4 up to 2048");
  const int64_t NC = N * C;
  DropoutSpec d;
  d.p = 0.1f;
  d.key = derive_key(7, RngPurpose::HiddenDropout, 1, 0, 1);

  ContextOptions o;
  o.math = MathMode::BF16;
  Context two_ctx(o);
  o.fused_layernorm_columns = true;
  Context one_ctx(o);
  cudaDeviceProp prop{};
  ERL_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));

  DeviceBuffer dy(2 * NC, "dy"), x(2 * NC, "x"), w(4 * C, "w"), mean(4 * N, "mean"), rstd(4 * N, "rstd");
  DeviceBuffer dinp_two(2 * NC, "dinp"), dinp_one(2 * NC, "dinp"), dx_two(2 * NC, "dx"), dx_one(2 * NC, "dx");
  DeviceBuffer dw_two(4 * C, "dw"), db_two(4 * C, "db"), dw_one(4 * C, "dw"), db_one(4 * C, "db");
  fill_bf16<<<2048, 256>>>(dy.as<__nv_bfloat16>(), NC, 1.0f, 0.0f, 1);
  fill_bf16<<<2048, 256>>>(x.as<__nv_bfloat16>(), NC, 2.0f, 0.3f, 2);
  fill_f32<<<64, 256>>>(w.as<float>(), C, 0.2f, 1.0f, 3);
  fill_f32<<<256, 256>>>(mean.as<float>(), N, 0.1f, 0.3f, 4);
  fill_f32<<<256, 256>>>(rstd.as<float>(), N, 0.2f, 0.9f, 5);
  ERL_CUDA_CHECK(cudaDeviceSynchronize());

  auto pass = [&](Context& ctx, DeviceBuffer& dinp, DeviceBuffer& dx, DeviceBuffer& dw, DeviceBuffer& db) {
    layernorm_backward_dropout(Launch(ctx.stream(), &ctx), Act<float>::half(dinp.as<bf16>()), dw.as<float>(),
                               db.as<float>(), Act<float>::half(dx.as<bf16>()), Act<const float>::half(dy.as<bf16>()),
                               Act<const float>::half(x.as<bf16>()), w.as<float>(), mean.as<float>(), rstd.as<float>(),
                               static_cast<int>(N), C, d, 0);
  };
  // Agreement first, from the same zeroed accumulators (dinp accumulates: the timed reps below grow it).
  for (DeviceBuffer* b : {&dinp_two, &dinp_one, &dw_two, &db_two, &dw_one, &db_one})
    ERL_CUDA_CHECK(cudaMemset(b->as<void>(), 0, b->bytes()));
  pass(two_ctx, dinp_two, dx_two, dw_two, db_two);
  pass(one_ctx, dinp_one, dx_one, dw_one, db_one);
  ERL_CUDA_CHECK(cudaDeviceSynchronize());
  const bool same_rows = to_host<uint16_t>(dinp_two, NC) == to_host<uint16_t>(dinp_one, NC) &&
                         to_host<uint16_t>(dx_two, NC) == to_host<uint16_t>(dx_one, NC);
  const double gap_dw = relative_gap(to_host<float>(dw_one, C), to_host<float>(dw_two, C));
  const double gap_db = relative_gap(to_host<float>(db_one, C), to_host<float>(db_two, C));

  const double two = median_ms(static_cast<cudaStream_t>(two_ctx.stream()), reps,
                               [&] { pass(two_ctx, dinp_two, dx_two, dw_two, db_two); });
  const double one = median_ms(static_cast<cudaStream_t>(one_ctx.stream()), reps,
                               [&] { pass(one_ctx, dinp_one, dx_one, dw_one, db_one); });
  // bytes per element: dy 2, x 2, dinp 2 + 2, dx 2; the two-pass form reads dy and x once more
  const double bytes_one = 10.0 * NC, bytes_two = 14.0 * NC;
  std::printf("device: %s  LayerNorm backward + dropout, N=%lld C=%d, bf16 dy / x / dinp / dx, reps %d (median)\n",
              prop.name, static_cast<long long>(N), C, reps);
  std::printf("  two-pass (default)        %8.3f ms  %7.0f GB/s\n", two, bytes_two / two / 1e6);
  std::printf("  one-pass (fused columns)  %8.3f ms  %7.0f GB/s   one/two %.3f\n", one, bytes_one / one / 1e6,
              one / two);
  std::printf("  agreement: dinp and dx %s; dw %.2e, db %.2e relative\n", same_rows ? "bit for bit" : "DIFFER",
              gap_dw, gap_db);
  std::printf(
      "LAYERNORM_PROBE_JSON {\"device\":\"%s\",\"tokens\":%lld,\"hidden\":%d,\"two_pass_ms\":%.4f,"
      "\"one_pass_ms\":%.4f,\"rows_equal\":%s,\"gap_dw\":%.3e,\"gap_db\":%.3e}\n",
      prop.name, static_cast<long long>(N), C, two, one, same_rows ? "true" : "false", gap_dw, gap_db);
  return same_rows && gap_dw < 1e-4 && gap_db < 1e-4 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  return erlangshen::bench::gpu_tool_main("erlangshen_layernorm_probe", [&] { return run(argc, argv); });
}
