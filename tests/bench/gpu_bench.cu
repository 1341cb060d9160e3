// GPU training-step benchmark: one pre-LN BERT encoder training step (embeddings, L layers, final LayerNorm, MLM
// head on 15% of the tokens with vocab cross-entropy, full backward, global grad norm, AdamW) on the CUDA backend
// ops (runtime/cuda/kernels.h), bf16 math by default. Prints tokens/s, model TFLOP/s, MFU against the dense bf16
// peak of the GPU (runtime/cuda/device.h; "unknown" otherwise) and peak memory.
//
//   erlangshen_gpu_bench [--model 1.3b|base] [--seq T] [--batch B (0: largest that fits)] [--steps S]
//                        [--warmup W] [--math bf16|fp32] [--max-batch B] [--profile]
//
// --profile: one more step with a CUDA event after every op, then the GPU time per op category (GEMMs,
// attention, LayerNorm, dropout+residual, ...) as a table and a PROFILE_JSON line: where the step's time goes.
//
// Model FLOPs = 3 x forward GEMM FLOPs (QKV, attention QK^T and PV, attention-out, FFN in/out, MLM transform and
// decoder): backward = 2 x forward, no recompute counted. The SOP head and pooler (B x C x C) are left out.
// Limits (see README "CUDA backend"): activations are fp32 storage (the ops interface is float), GEMMs read fp32
// and compute in bf16 on the tensor cores; attention materialises S/P per sample.
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "runtime/check.h"
#include "runtime/cuda/common.cuh"
#include "runtime/cuda/context.h"
#include "runtime/cuda/device.h"
#include "runtime/cuda/kernels.h"
#include "runtime/cuda/memory.h"
#include "tests/bench/gpu_tool_main.h"

using namespace erlangshen;
using namespace erlangshen::cuda;

namespace {

struct ModelShape {
  std::string name;
  int C, L, NH, F, V, P;
  Activation act;
};

ModelShape model_shape(const std::string& name) {
  if (name == "1.3b") return {"erlangshen-1.3b", 2048, 24, 8, 8192, 21248, 512, Activation::GeluTanh};
  if (name == "base") return {"bert-base", 768, 12, 12, 3072, 21248, 512, Activation::GeluExact};
  throw Error("unknown --model " + name + " (1.3b | base)");
}

__global__ void init_uniform(float* p, int64_t n, PhiloxKey key, float lo, float hi) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const Philox4 r = philox_at(key, static_cast<uint64_t>(i));
    p[i] = lo + (hi - lo) * uniform_from_bits(r.v[0]);
  }
}

// Bump allocator over one device buffer.
struct Carve {
  char* base;
  int64_t used = 0, cap;
  template <class T>
  T* take(int64_t count) {
    const int64_t bytes = (count * int64_t(sizeof(T)) + 255) / 256 * 256;
    ERL_CHECK(used + bytes <= cap, "bench: buffer overflow");
    T* p = reinterpret_cast<T*>(base + used);
    used += bytes;
    return p;
  }
};

struct LayerParams {
  float *ln1w, *ln1b, *wqkv, *bqkv, *wo, *bo, *ln2w, *ln2b, *w1, *b1, *w2, *b2;
};
struct LayerActs {
  float *ln1, *ln1m, *ln1r, *qkv, *probs, *ctx, *x1, *ln2, *ln2m, *ln2r, *pre, *act, *x2;
};

struct Params {
  float *word, *pos, *type, *lnfw, *lnfb, *hw, *hb, *hlnw, *hlnb, *dec_b;
  std::vector<LayerParams> layers;
};

Params carve_params(const ModelShape& m, Carve& c) {
  const int64_t C = m.C, F = m.F;
  Params p;
  p.word = c.take<float>(int64_t(m.V) * C);
  p.pos = c.take<float>(int64_t(m.P) * C);
  p.type = c.take<float>(2 * C);
  p.layers.resize(m.L);
  for (auto& l : p.layers) {
    l.ln1w = c.take<float>(C), l.ln1b = c.take<float>(C);
    l.wqkv = c.take<float>(3 * C * C), l.bqkv = c.take<float>(3 * C);
    l.wo = c.take<float>(C * C), l.bo = c.take<float>(C);
    l.ln2w = c.take<float>(C), l.ln2b = c.take<float>(C);
    l.w1 = c.take<float>(F * C), l.b1 = c.take<float>(F);
    l.w2 = c.take<float>(C * F), l.b2 = c.take<float>(C);
  }
  p.lnfw = c.take<float>(C), p.lnfb = c.take<float>(C);
  p.hw = c.take<float>(C * C), p.hb = c.take<float>(C);
  p.hlnw = c.take<float>(C), p.hlnb = c.take<float>(C);
  p.dec_b = c.take<float>(m.V);
  return p;
}

int64_t param_count(const ModelShape& m) {
  Carve c{nullptr, 0, int64_t(1) << 62};
  carve_params(m, c);
  return c.used / 4;  // every tensor padded to 64 floats: the flat buffer's size in floats
}

struct Options {
  std::string model = "1.3b", math = "bf16";
  int seq = 512, batch = 0, steps = 5, warmup = 2, max_batch = 256;
  bool profile = false;
};

// GPU time per op category over one step: an event is recorded after every op (tick), and the time between two
// consecutive events is charged to the op that ended at the second. Recording events does not synchronise, so
// the step runs as it does untimed; the categories add up to the step's GPU time from begin() on.
class OpProfile {
 public:
  explicit OpProfile(cudaStream_t stream) : stream_(stream) {}
  ~OpProfile() {
    for (auto& [e, cat] : marks_) cudaEventDestroy(e);
  }
  void begin() {
    on_ = true;
    tick(nullptr);
  }
  void tick(const char* category) {
    if (!on_) return;
    cudaEvent_t e;
    ERL_CUDA_CHECK(cudaEventCreate(&e));
    ERL_CUDA_CHECK(cudaEventRecord(e, stream_));
    marks_.emplace_back(e, category);
  }
  void report() {
    ERL_CUDA_CHECK(cudaStreamSynchronize(stream_));
    std::vector<std::pair<std::string, double>> ms;
    double total = 0;
    for (size_t i = 1; i < marks_.size(); ++i) {
      float t = 0;
      ERL_CUDA_CHECK(cudaEventElapsedTime(&t, marks_[i - 1].first, marks_[i].first));
      total += t;
      auto it = std::find_if(ms.begin(), ms.end(), [&](const auto& x) { return x.first == marks_[i].second; });
      if (it == ms.end()) ms.emplace_back(marks_[i].second, t);
      else it->second += t;
    }
    std::sort(ms.begin(), ms.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
    std::printf("profile of one step (GPU time per op category, %zu ops):\n", marks_.size() - 1);
    std::string json = "PROFILE_JSON {";
    for (const auto& [cat, t] : ms) {
      std::printf("  %-18s %9.2f ms  %5.1f%%\n", cat.c_str(), t, 100.0 * t / total);
      char item[96];
      std::snprintf(item, sizeof item, "%s\"%s\":%.3f", json.size() > 14 ? "," : "", cat.c_str(), t);
      json += item;
    }
    std::printf("  %-18s %9.2f ms\n%s}\n", "total", total, json.c_str());
  }

 private:
  cudaStream_t stream_;
  bool on_ = false;
  std::vector<std::pair<cudaEvent_t, const char*>> marks_;
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      ERL_CHECK(i + 1 < argc, "missing value after " << a);
      return argv[++i];
    };
    if (a == "--model") o.model = next();
    else if (a == "--seq") o.seq = std::stoi(next());
    else if (a == "--batch") o.batch = std::stoi(next());
    else if (a == "--steps") o.steps = std::stoi(next());
    else if (a == "--warmup") o.warmup = std::stoi(next());
    else if (a == "--math") o.math = next();
    else if (a == "--max-batch") o.max_batch = std::stoi(next());
    else if (a == "--profile") o.profile = true;
    else throw Error("unknown option " + a);
  }
  return o;
}

int run(const Options& o) {
  const ModelShape m = model_shape(o.model);
  const int T = o.seq, C = m.C, F = m.F, NH = m.NH, HS = C / NH, V = m.V;
  ERL_CHECK(T <= m.P, "--seq above max positions");
  ContextOptions co;
  co.math = o.math == "fp32" ? MathMode::FP32 : MathMode::BF16;
  Context ctx(co);
  const Launch l(ctx.stream(), &ctx);
  const std::string device = device_description(0);
  cudaDeviceProp prop{};
  ERL_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));

  // Memory: params, grads, AdamW m/v (fp32, 16 bytes/param) + activations (fp32) from the planner.
  const int64_t P = param_count(m);
  TrainingMemoryRequest q;
  q.params = P;
  q.shape = EncoderShape{C, m.L, NH, HS, F, V, 0.15, 4};
  q.seq_len = T;
  int64_t free_b = 0, total_b = 0;
  device_memory_info(&free_b, &total_b);
  const int64_t state_bytes = 16 * P;  // no bf16 copy in this bench: GEMMs read the fp32 weights
  int B = o.batch;
  if (B == 0) {
    // The planner counts 18 bytes/param; credit the 2 not used here.
    B = largest_fitting_micro_batch(q, free_b + 2 * P, o.max_batch);
    ERL_CHECK(B >= 1, "bench: even micro-batch 1 does not fit");
  }
  q.micro_batch = B;
  const int N = B * T;
  const int M = std::max(1, static_cast<int>(0.15 * N));

  DeviceBuffer state(state_bytes, "parameters, gradients, AdamW state");
  Carve pc{state.as<char>(), 0, 4 * P}, gc{state.as<char>() + 4 * P, 0, 4 * P};
  Params p = carve_params(m, pc), g = carve_params(m, gc);
  float* adam_m = reinterpret_cast<float*>(state.as<char>() + 8 * P);
  float* adam_v = reinterpret_cast<float*>(state.as<char>() + 12 * P);
  init_uniform<<<4096, 256, 0, stream_of(l)>>>(reinterpret_cast<float*>(state.as<char>()), P,
                                               derive_key(1, RngPurpose::Init, 0, 0, 0), -0.03f, 0.03f);
  for (auto& lp : p.layers) {
    fill(l, lp.ln1w, C, 1.0f), fill(l, lp.ln2w, C, 1.0f);
  }
  fill(l, p.lnfw, C, 1.0f), fill(l, p.hlnw, C, 1.0f);
  fill(l, reinterpret_cast<float*>(state.as<char>() + 4 * P), 3 * P, 0.0f);

  const int64_t act_bytes = activation_bytes(q.shape, B, T, Recompute::None) + (int64_t(64) << 20);
  DeviceBuffer acts(act_bytes, "activations");
  Carve ac{acts.as<char>(), 0, act_bytes};
  const int64_t NC = int64_t(N) * C, TT = int64_t(T) * T;
  int32_t* ids = ac.take<int32_t>(N);
  int32_t* types = ac.take<int32_t>(N);
  uint8_t* valid = ac.take<uint8_t>(N);
  int32_t* mpos = ac.take<int32_t>(M);
  int32_t* mtgt = ac.take<int32_t>(M);
  float* emb = ac.take<float>(NC);
  std::vector<LayerActs> la(m.L);
  for (auto& a : la) {
    a.ln1 = ac.take<float>(NC), a.ln1m = ac.take<float>(N), a.ln1r = ac.take<float>(N);
    a.qkv = ac.take<float>(3 * NC), a.probs = ac.take<float>(int64_t(B) * NH * TT), a.ctx = ac.take<float>(NC);
    a.x1 = ac.take<float>(NC), a.ln2 = ac.take<float>(NC), a.ln2m = ac.take<float>(N), a.ln2r = ac.take<float>(N);
    a.pre = ac.take<float>(int64_t(N) * F), a.act = ac.take<float>(int64_t(N) * F), a.x2 = ac.take<float>(NC);
  }
  float *hidden = ac.take<float>(NC), *lnfm = ac.take<float>(N), *lnfr = ac.take<float>(N), *tmp = ac.take<float>(NC);
  float *dres = ac.take<float>(NC), *dtmp = ac.take<float>(NC), *dln = ac.take<float>(NC);
  float *dctx = ac.take<float>(NC), *dqkv = ac.take<float>(3 * NC), *dact = ac.take<float>(int64_t(N) * F);
  AttentionShape as{B, T, NH, HS};
  float* scratch = ac.take<float>(cuda::attention_scratch_elems(as));
  float *hg = ac.take<float>(int64_t(M) * C), *hpre = ac.take<float>(int64_t(M) * C), *hact = ac.take<float>(int64_t(M) * C);
  float *hln = ac.take<float>(int64_t(M) * C), *hm = ac.take<float>(M), *hr = ac.take<float>(M);
  float* logits = ac.take<float>(int64_t(M) * V);
  float *rmax = ac.take<float>(M), *sexp = ac.take<float>(M), *tlog = ac.take<float>(M), *dloss = ac.take<float>(M);
  float *dh1 = ac.take<float>(int64_t(M) * C), *dh2 = ac.take<float>(int64_t(M) * C);

  TokenRows rows;  // the ids by vocabulary row, for the word-embedding backward (runtime/token_rows.h)
  {  // inputs: random ids / types, no padding, every ~7th token masked
    std::vector<int32_t> h_ids(N), h_types(N), h_pos(M), h_tgt(M);
    for (int n = 0; n < N; ++n) h_ids[n] = (n * 7919) % 21128, h_types[n] = (n % T) >= T / 2;
    for (int k = 0; k < M; ++k) h_pos[k] = static_cast<int32_t>(int64_t(k) * N / M), h_tgt[k] = (k * 104729) % 21128;
    std::vector<uint8_t> h_valid(N, 1);
    ERL_CUDA_CHECK(cudaMemcpy(ids, h_ids.data(), 4 * N, cudaMemcpyHostToDevice));
    TokenRowsBuilder by_row;
    by_row.build(h_ids.data(), N, 0, V);
    int32_t *row = ac.take<int32_t>(by_row.rows()), *start = ac.take<int32_t>(by_row.rows() + 1),
            *tokens = ac.take<int32_t>(N);
    ERL_CUDA_CHECK(cudaMemcpy(row, by_row.row().data(), 4 * by_row.row().size(), cudaMemcpyHostToDevice));
    ERL_CUDA_CHECK(cudaMemcpy(start, by_row.start().data(), 4 * by_row.start().size(), cudaMemcpyHostToDevice));
    ERL_CUDA_CHECK(cudaMemcpy(tokens, by_row.tokens().data(), 4 * by_row.tokens().size(), cudaMemcpyHostToDevice));
    rows = TokenRows{by_row.rows(), row, start, tokens};
    ERL_CUDA_CHECK(cudaMemcpy(types, h_types.data(), 4 * N, cudaMemcpyHostToDevice));
    ERL_CUDA_CHECK(cudaMemcpy(valid, h_valid.data(), N, cudaMemcpyHostToDevice));
    ERL_CUDA_CHECK(cudaMemcpy(mpos, h_pos.data(), 4 * M, cudaMemcpyHostToDevice));
    ERL_CUDA_CHECK(cudaMemcpy(mtgt, h_tgt.data(), 4 * M, cudaMemcpyHostToDevice));
    fill(l, dloss, M, 1.0f / M);
  }

  auto drop = [&](RngPurpose purpose, int layer, int site, int64_t step) {
    DropoutSpec d;
    d.p = 0.1f;
    d.key = derive_key(1234, purpose, step, layer, site);
    return d;
  };
  const bool tanh_gelu = m.act == Activation::GeluTanh;
  OpProfile prof(static_cast<cudaStream_t>(ctx.stream()));

  auto step = [&](int64_t s) {
    // ---- forward ----
    word_embedding_forward(l, emb, ids, p.word, N, C, 0, V);
    prof.tick("embedding");
    position_type_embedding_forward(l, emb, types, p.pos, p.type, B, T, C);
    prof.tick("embedding");
    dropout_residual_forward(l, emb, nullptr, emb, NC, drop(RngPurpose::EmbeddingDropout, 0, 0, s), 0);
    prof.tick("dropout+residual");
    const float* x = emb;
    for (int i = 0; i < m.L; ++i) {
      const LayerParams& w = p.layers[i];
      LayerActs& a = la[i];
      layernorm_forward(l, a.ln1, a.ln1m, a.ln1r, x, w.ln1w, w.ln1b, N, C, 1e-12);
      prof.tick("layernorm");
      matmul_forward(l, a.qkv, a.ln1, w.wqkv, w.bqkv, N, C, 3 * C);
      prof.tick("gemm");
      cuda::attention_forward(l, a.ctx, a.probs, scratch, a.qkv, valid, as, drop(RngPurpose::AttentionDropout, i, 0, s));
      prof.tick("attention");
      matmul_forward(l, tmp, a.ctx, w.wo, w.bo, N, C, C);
      prof.tick("gemm");
      dropout_residual_forward(l, a.x1, x, tmp, NC, drop(RngPurpose::HiddenDropout, i, 0, s), 0);
      prof.tick("dropout+residual");
      layernorm_forward(l, a.ln2, a.ln2m, a.ln2r, a.x1, w.ln2w, w.ln2b, N, C, 1e-12);
      prof.tick("layernorm");
      if (tanh_gelu) {
        matmul_bias_gelu_forward(l, a.act, a.pre, a.ln2, w.w1, w.b1, N, C, F);
        prof.tick("gemm");
      } else {
        matmul_forward(l, a.pre, a.ln2, w.w1, nullptr, N, C, F);
        prof.tick("gemm");
        bias_gelu_forward(l, a.act, a.pre, w.b1, N, F, m.act);
        prof.tick("bias+gelu");
      }
      matmul_forward(l, tmp, a.act, w.w2, w.b2, N, F, C);
      prof.tick("gemm");
      dropout_residual_forward(l, a.x2, a.x1, tmp, NC, drop(RngPurpose::HiddenDropout, i, 1, s), 0);
      prof.tick("dropout+residual");
      x = a.x2;
    }
    layernorm_forward(l, hidden, lnfm, lnfr, x, p.lnfw, p.lnfb, N, C, 1e-12);
    prof.tick("layernorm");
    // MLM head on the masked rows: gather -> dense -> GeLU -> LN -> tied decoder + bias -> CE
    gather_rows(l, hg, hidden, mpos, M, C);
    prof.tick("mlm head");
    matmul_forward(l, hpre, hg, p.hw, nullptr, M, C, C);
    prof.tick("gemm");
    bias_gelu_forward(l, hact, hpre, p.hb, M, C, m.act);
    prof.tick("bias+gelu");
    layernorm_forward(l, hln, hm, hr, hact, p.hlnw, p.hlnb, M, C, 1e-12);
    prof.tick("layernorm");
    matmul_forward(l, logits, hln, p.word, p.dec_b, M, C, V);
    prof.tick("gemm");
    ce_rowmax(l, rmax, logits, M, V);
    prof.tick("mlm head");
    ce_sumexp_target(l, sexp, tlog, logits, rmax, mtgt, M, V, 0);
    prof.tick("mlm head");
    // ---- backward ----
    ce_backward(l, logits, logits, rmax, sexp, mtgt, dloss, M, V, 0);
    prof.tick("mlm head");
    matmul_backward(l, dh1, g.word, g.dec_b, logits, hln, p.word, M, C, V);
    prof.tick("gemm");
    fill(l, dh2, int64_t(M) * C, 0.0f);
    prof.tick("zero-fill");
    layernorm_backward(l, dh2, g.hlnw, g.hlnb, dh1, hact, p.hlnw, hm, hr, M, C);
    prof.tick("layernorm");
    bias_gelu_backward(l, dh2, g.hb, dh2, hpre, M, C, m.act);
    prof.tick("bias+gelu");
    matmul_backward(l, dh1, g.hw, nullptr, dh2, hg, p.hw, M, C, C);
    prof.tick("gemm");
    fill(l, dln, NC, 0.0f);
    prof.tick("zero-fill");
    scatter_add_rows(l, dln, dh1, mpos, M, C);
    prof.tick("mlm head");
    fill(l, dres, NC, 0.0f);
    prof.tick("zero-fill");
    layernorm_backward(l, dres, g.lnfw, g.lnfb, dln, x, p.lnfw, lnfm, lnfr, N, C);
    prof.tick("layernorm");
    for (int i = m.L - 1; i >= 0; --i) {
      const LayerParams& w = p.layers[i];
      LayerParams& gw = g.layers[i];
      LayerActs& a = la[i];
      const float* xin = i == 0 ? emb : la[i - 1].x2;
      dropout_backward(l, dtmp, dres, NC, drop(RngPurpose::HiddenDropout, i, 1, s), 0);
      prof.tick("dropout+residual");
      matmul_backward(l, dact, gw.w2, gw.b2, dtmp, a.act, w.w2, N, F, C);
      prof.tick("gemm");
      bias_gelu_backward(l, dact, gw.b1, dact, a.pre, N, F, m.act);
      prof.tick("bias+gelu");
      matmul_backward(l, dln, gw.w1, nullptr, dact, a.ln2, w.w1, N, C, F);
      prof.tick("gemm");
      layernorm_backward(l, dres, gw.ln2w, gw.ln2b, dln, a.x1, w.ln2w, a.ln2m, a.ln2r, N, C);
      prof.tick("layernorm");
      dropout_backward(l, dtmp, dres, NC, drop(RngPurpose::HiddenDropout, i, 0, s), 0);
      prof.tick("dropout+residual");
      matmul_backward(l, dctx, gw.wo, gw.bo, dtmp, a.ctx, w.wo, N, C, C);
      prof.tick("gemm");
      cuda::attention_backward(l, dqkv, scratch, dctx, a.qkv, a.probs, valid, as,
                         drop(RngPurpose::AttentionDropout, i, 0, s));
      prof.tick("attention");
      matmul_backward(l, dln, gw.wqkv, gw.bqkv, dqkv, a.ln1, w.wqkv, N, C, 3 * C);
      prof.tick("gemm");
      layernorm_backward(l, dres, gw.ln1w, gw.ln1b, dln, xin, w.ln1w, a.ln1m, a.ln1r, N, C);
      prof.tick("layernorm");
    }
    dropout_backward(l, dres, dres, NC, drop(RngPurpose::EmbeddingDropout, 0, 0, s), 0);
    prof.tick("dropout+residual");
    position_type_embedding_backward(l, g.pos, g.type, dres, types, B, T, C, 2);
    prof.tick("embedding");
    word_embedding_backward_rows(l, g.word, dres, rows, C);
    prof.tick("embedding");
    // ---- optimizer: global norm (synchronises), clip, AdamW, zero grads ----
    float* grads = reinterpret_cast<float*>(state.as<char>() + 4 * P);
    const double norm = std::sqrt(sum_squares(l, grads, P));
    prof.tick("optimizer");
    const double clip = norm > 1.0 ? 1.0 / norm : 1.0;
    adamw_update(l, reinterpret_cast<float*>(state.as<char>()), grads, adam_m, adam_v, P, 1e-4, 0.9, 0.999, 1e-8,
                 0.01, s + 1, clip);
    prof.tick("optimizer");
    fill(l, grads, P, 0.0f);
    prof.tick("zero-fill");
  };

  for (int s = 0; s < o.warmup; ++s) step(s);
  ctx.synchronize();
  ERL_CUDA_CHECK(cudaDeviceSynchronize());
  const auto t0 = std::chrono::steady_clock::now();
  for (int s = 0; s < o.steps; ++s) step(o.warmup + s);
  ctx.synchronize();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / o.steps;
  device_memory_info(&free_b, &total_b);

  const double fwd = double(m.L) * (2.0 * N * C * 3.0 * C + 2.0 * N * C * C + 4.0 * N * C * F +
                                    4.0 * B * NH * double(T) * T * HS) +
                     2.0 * M * C * C + 2.0 * M * double(C) * V;
  const double tflops = 3.0 * fwd / secs / 1e12;
  const double peak = dense_bf16_peak_tflops(prop.name);
  char mfu[32];
  if (peak > 0) std::snprintf(mfu, sizeof mfu, "%.1f%%", 100.0 * tflops / peak);
  else std::snprintf(mfu, sizeof mfu, "unknown");
  std::printf("device: %s\nmodel: %s  params: %.3fB  seq: %d  micro_batch: %d  masked rows: %d  math: %s\n",
              device.c_str(), m.name.c_str(), P / 1e9, T, B, M, math_mode_name(ctx.math()));
  std::printf("step: %.1f ms  tokens/s: %.0f  model TFLOP/s: %.1f  MFU: %s (dense bf16 peak %s)  "
              "GPU memory in use: %.2f GiB\n",
              secs * 1e3, N / secs, tflops, mfu, peak > 0 ? (std::to_string(int(peak)) + " TFLOP/s").c_str() : "unknown",
              (total_b - free_b) / double(1 << 30));
  std::printf("BENCH_JSON {\"impl\":\"erlangshen-cuda\",\"model\":\"%s\",\"device\":\"%s\",\"seq\":%d,\"batch\":%d,"
              "\"step_ms\":%.2f,\"tokens_per_s\":%.1f,\"tflops\":%.2f,\"mfu\":%.4f,\"mem_gib\":%.2f}\n",
              m.name.c_str(), prop.name, T, B, secs * 1e3, N / secs, tflops, peak > 0 ? tflops / peak : -1.0,
              (total_b - free_b) / double(1 << 30));
  if (o.profile) {
    prof.begin();
    step(o.warmup + o.steps);
    prof.report();
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return erlangshen::bench::gpu_tool_main("erlangshen_gpu_bench", [&] { return run(parse(argc, argv)); });
}
