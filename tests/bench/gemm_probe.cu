// GEMM probe: how fast the linear layers of one encoder layer run on this GPU under three storage choices, to
// decide from one device run whether bf16 activation storage is worth its refactor. For a layer of width C, FFN
// width F and N = batch x seq tokens, the 12 GEMMs of one training step (row-major, as runtime/cuda/matmul.cu):
//   forward   Y (N, OC)  = X (N, IC) @ W (OC, IC)^T          for (IC, OC) in (C,3C) (C,C) (C,F) (F,C)
//   dgrad     dX (N, IC) = dY (N, OC) @ W (OC, IC)
//   wgrad     dW (OC, IC) += dY^T @ X
// each 2 N IC OC FLOPs, timed with CUDA events (median of --reps) under
//   fp32-staged     fp32 operands and output, MathMode::BF16: both operands rounded to bf16 into the Context's
//                   staging before each GEMM (the backend today: fp32 storage; the rounding is counted)
//   bf16-f32out     bf16 operands, fp32 output, COMPUTE_32F            (bf16 activations, fp32 accumulators)
//   bf16            bf16 operands and output, COMPUTE_32F              (bf16 storage throughout)
// and reported as TFLOP/s per GEMM and over the layer, with the share of the GPU's dense bf16 peak.
//
//   erlangshen_gemm_probe [--model 1.3b|base] [--tokens N (default 8192)] [--reps R (default 10)]
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "runtime/check.h"
#include "runtime/cuda/common.cuh"
#include "runtime/cuda/context.h"
#include "runtime/cuda/device.h"
#include "runtime/cuda/gemm.cuh"
#include "runtime/cuda/memory.h"
#include "tests/bench/gpu_tool_main.h"

using namespace erlangshen;
using namespace erlangshen::cuda;

namespace {

__global__ void fill_pattern(float* p, int64_t n, float scale) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    p[i] = scale * static_cast<float>(static_cast<int>((i * 2654435761ull) % 2001) - 1000) / 1000.0f;
}

__global__ void to_bf16(__nv_bfloat16* dst, const float* src, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    dst[i] = __float2bfloat16_rn(src[i]);
}

struct Variant {
  const char* name;
  cudaDataType_t ab, c;
  MathMode math;
};

enum class Kind { Forward, Dgrad, Wgrad };

struct Shape {
  std::string what;
  Kind kind;
  GemmArgs g;  // pointers and types filled per variant
  double flops;
};

// The 12 GEMMs of a layer in column-major terms (see runtime/cuda/matmul.cu).
std::vector<Shape> layer_gemms(int N, int C, int F) {
  std::vector<Shape> out;
  const int dims[4][2] = {{C, 3 * C}, {C, C}, {C, F}, {F, C}};
  const char* names[4] = {"qkv", "attn-out", "ffn-in", "ffn-out"};
  for (int i = 0; i < 4; ++i) {
    const int IC = dims[i][0], OC = dims[i][1];
    const double fl = 2.0 * N * double(IC) * OC;
    GemmArgs f;  // forward: C(OC, N) = W^T(col, transposed) @ X^T
    f.trans_a = true, f.m = OC, f.n = N, f.k = IC, f.lda = IC, f.ldb = IC, f.ldc = OC;
    out.push_back({std::string(names[i]) + " fwd", Kind::Forward, f, fl});
    GemmArgs d;  // dgrad: C(IC, N) = W(col) @ dY^T
    d.m = IC, d.n = N, d.k = OC, d.lda = IC, d.ldb = OC, d.ldc = IC;
    out.push_back({std::string(names[i]) + " dgrad", Kind::Dgrad, d, fl});
    GemmArgs w;  // wgrad: C(IC, OC) += X^T @ dY
    w.trans_b = true, w.m = IC, w.n = OC, w.k = N, w.lda = IC, w.ldb = OC, w.ldc = IC, w.beta = 1.0f;
    out.push_back({std::string(names[i]) + " wgrad", Kind::Wgrad, w, fl});
  }
  return out;
}

int run(int argc, char** argv) {
  std::string model = "1.3b";
  int N = 8192, reps = 10;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    ERL_CHECK(i + 1 < argc, "missing value after " << a);
    if (a == "--model") model = argv[++i];
    else if (a == "--tokens") N = std::stoi(argv[++i]);
    else if (a == "--reps") reps = std::stoi(argv[++i]);
    else throw Error("unknown option " + a);
  }
  ERL_CHECK(model == "1.3b" || model == "base", "--model 1.3b | base");
  const int C = model == "1.3b" ? 2048 : 768, F = 4 * C;
  Context ctx;
  const Launch l(ctx.stream(), &ctx);
  cudaStream_t stream = static_cast<cudaStream_t>(ctx.stream());
  cudaDeviceProp prop{};
  ERL_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  const double peak = dense_bf16_peak_tflops(prop.name);

  // Operands as large as the largest GEMM needs: X/dY up to N x F, W up to F x C (3C x C), Y up to N x F.
  const int64_t big = int64_t(N) * std::max(F, 3 * C), wmax = int64_t(C) * std::max(F, 3 * C);
  DeviceBuffer xf(4 * big, "probe X"), wf(4 * wmax, "probe W"), yf(4 * big, "probe Y");
  DeviceBuffer xb(2 * big, "probe X bf16"), wb(2 * wmax, "probe W bf16"), yb(2 * big, "probe Y bf16");
  fill_pattern<<<2048, 256, 0, stream>>>(xf.as<float>(), big, 1.0f);
  fill_pattern<<<2048, 256, 0, stream>>>(wf.as<float>(), wmax, 0.02f);
  to_bf16<<<2048, 256, 0, stream>>>(xb.as<__nv_bfloat16>(), xf.as<float>(), big);
  to_bf16<<<2048, 256, 0, stream>>>(wb.as<__nv_bfloat16>(), wf.as<float>(), wmax);
  ERL_CUDA_CHECK(cudaStreamSynchronize(stream));

  const Variant variants[] = {{"fp32-staged", CUDA_R_32F, CUDA_R_32F, MathMode::BF16},
                              {"bf16-f32out", CUDA_R_16BF, CUDA_R_32F, MathMode::BF16},
                              {"bf16", CUDA_R_16BF, CUDA_R_16BF, MathMode::BF16}};
  const std::vector<Shape> shapes = layer_gemms(N, C, F);
  std::printf("device: %s  model: %s  C=%d F=%d tokens N=%d  reps %d (median)\n", prop.name, model.c_str(), C, F,
              N, reps);
  std::printf("%-16s", "gemm");
  for (const Variant& v : variants) std::printf(" %16s", v.name);
  std::printf("   (TFLOP/s)\n");
  std::vector<double> layer_ms(3, 0.0);
  cudaEvent_t e0, e1;
  ERL_CUDA_CHECK(cudaEventCreate(&e0));
  ERL_CUDA_CHECK(cudaEventCreate(&e1));
  for (const Shape& s : shapes) {
    std::printf("%-16s", s.what.c_str());
    for (size_t vi = 0; vi < 3; ++vi) {
      const Variant& v = variants[vi];
      ctx.set_math(v.math);
      GemmArgs g = s.g;
      g.a_type = g.b_type = v.ab, g.c_type = v.c;
      // Operands (values do not matter for speed; reads may alias): forward A = W, B = X, C = Y; dgrad A = W,
      // B = dY, C = dX; wgrad A = X, B = dY, C = dW. Activation-sized tensors fit x / y, weight-sized ones w.
      const bool bf = v.ab == CUDA_R_16BF, bf_out = v.c == CUDA_R_16BF;
      const void* x = bf ? xb.as<void>() : xf.as<void>();
      const void* w = bf ? wb.as<void>() : wf.as<void>();
      g.A = s.kind == Kind::Wgrad ? x : w;
      g.B = x;
      g.C = s.kind == Kind::Wgrad ? (bf_out ? wb.as<void>() : wf.as<void>()) : (bf_out ? yb.as<void>() : yf.as<void>());
      for (int w = 0; w < 2; ++w) gemm(l, "gemm_probe", g);  // heuristic + warm-up
      std::vector<float> ms(reps);
      for (int r = 0; r < reps; ++r) {
        ERL_CUDA_CHECK(cudaEventRecord(e0, stream));
        gemm(l, "gemm_probe", g);
        ERL_CUDA_CHECK(cudaEventRecord(e1, stream));
        ERL_CUDA_CHECK(cudaEventSynchronize(e1));
        ERL_CUDA_CHECK(cudaEventElapsedTime(&ms[r], e0, e1));
      }
      std::sort(ms.begin(), ms.end());
      const double med = ms[reps / 2];
      layer_ms[vi] += med;
      std::printf(" %16.1f", s.flops / (med * 1e-3) / 1e12);
    }
    std::printf("\n");
  }
  double layer_flops = 0;
  for (const Shape& s : shapes) layer_flops += s.flops;
  std::printf("%-16s", "layer");
  for (size_t vi = 0; vi < 3; ++vi) std::printf(" %16.1f", layer_flops / (layer_ms[vi] * 1e-3) / 1e12);
  std::printf("\n");
  for (size_t vi = 0; vi < 3; ++vi) {
    const double tf = layer_flops / (layer_ms[vi] * 1e-3) / 1e12;
    std::printf("GEMM_PROBE_JSON {\"device\":\"%s\",\"model\":\"%s\",\"tokens\":%d,\"variant\":\"%s\","
                "\"layer_ms\":%.3f,\"tflops\":%.1f,\"share_of_peak\":%.3f}\n",
                prop.name, model.c_str(), N, variants[vi].name, layer_ms[vi], tf, peak > 0 ? tf / peak : -1.0);
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return erlangshen::bench::gpu_tool_main("erlangshen_gemm_probe", [&] { return run(argc, argv); });
}
