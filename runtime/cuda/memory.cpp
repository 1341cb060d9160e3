// Device memory planning (see memory.h).
#include "runtime/cuda/memory.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <sstream>

#include "runtime/check.h"

namespace erlangshen::cuda {
namespace {

std::string gib(int64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f GiB", static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0));
  return buf;
}

// Saved per token of one layer (elements), following the activations the encoder keeps for backward:
// ln1 (C) + stats (2) + qkv (3 Cl) + ctx (Cl) + x1 (C) + ln2 (C) + stats (2) + pre, act (2 Fl) + x2 (C) [+ probs NHl*T,
// or with flash attention its row statistics 2 NHl]
int64_t layer_elems_per_token(const EncoderShape& s, int seq_len, bool keep_probs) {
  const int64_t C = s.hidden, Cl = int64_t(s.heads_local) * s.head_dim, Fl = s.ffn_local;
  int64_t e = 4 * C + 4 + 4 * Cl + 2 * Fl;
  if (keep_probs) e += int64_t(s.heads_local) * (s.flash_attention ? 2 : seq_len);
  return e;
}

}  // namespace

int64_t activation_bytes(const EncoderShape& s, int B, int T, Recompute r) {
  const int64_t N = int64_t(B) * T, C = s.hidden, Cl = int64_t(s.heads_local) * s.head_dim, Fl = s.ffn_local;
  // The [act] tensors of a layer (ln1, ln2, qkv, ctx, pre, act, and the unfused attention's probabilities where the
  // layer keeps them) are counted at act_bytes, its residual stream (x1, x2) at residual_bytes, the rest at
  // storage_bytes.
  const bool keep_probs = s.flash_attention || r != Recompute::Selective;
  const int64_t probs_block = int64_t(B) * s.heads_local * T * T;  // one layer's (B, NH, T, T) probabilities
  // bf16 probabilities come with room for the row statistics the attention may save with S instead (attention.cu:
  // a float2 a row, 4 bf16 elements), in every block the model allocates
  const int64_t probs_stats = s.act_bytes == 2 && !s.flash_attention ? 4 * int64_t(B) * s.heads_local * T : 0;
  const int64_t layer_act = (2 * C + 4 * Cl + 2 * Fl) * N + (keep_probs && !s.flash_attention ? probs_block : 0);
  const int64_t layer_res = 2 * N * C;
  const int64_t layer_rest = layer_elems_per_token(s, T, keep_probs) * N - layer_act - layer_res;
  int64_t saved, saved_act, saved_res;
  if (r == Recompute::Full) {  // layer inputs + one live layer
    saved = layer_rest;
    saved_act = layer_act;
    saved_res = int64_t(s.layers) * N * C + layer_res;
  } else {
    saved = int64_t(s.layers) * layer_rest;
    saved_act = int64_t(s.layers) * layer_act;
    saved_res = int64_t(s.layers) * layer_res;
  }
  saved_res += 2 * N * C;  // the embeddings' output (layer 0's input) and the stream's gradient dres
  // Selective recompute keeps one (B, NH, T, T) block for the layer being recomputed (flash: none). Full counts
  // the live layer's probabilities in layer_rest already (the model allocates one block: model/megatron_bert.cpp).
  if (r == Recompute::Selective && !s.flash_attention) saved_act += probs_block;
  saved_act += probs_stats * (r == Recompute::None ? s.layers : 1);
  // Non-layer: final LN output + stats, row-parallel temp, backward scratch (dln; dtmp, dctx,
  // dqkv, dact [act]), attention scratch (2 B NH T^2 + 2 N Cl: runtime/cuda/attention.cu), output layer on the
  // masked rows (7 C + V per row + stats).
  const int64_t M = static_cast<int64_t>(s.masked_fraction * N) + B;
  // Flash attention's scratch: bf16 copies of qkv and dout (2 N Cl bf16 = N Cl floats; counted in full) and D
  // (B NH T).
  const int64_t attention_scratch = s.flash_attention ? 2 * N * Cl + int64_t(B) * s.heads_local * T
                                                      : 2 * int64_t(B) * s.heads_local * T * T + 2 * N * Cl;
  // 5 N: the staged ids, token types and mask (~2 N floats) and the word-embedding backward's token-rows index
  // (runtime/token_rows.h: at most 3 N + 1 int32).
  const int64_t other = 2 * N * C + 5 * N + N * C + attention_scratch + M * (7 * C + s.vocab_local + 6);
  // bf16 storage adds a bf16 copy of the row-parallel outputs (model/activations.h row_out; with TP 1 only, counted
  // always), and with TP 1 (this rank holds every head) stores the LayerNorm input gradient dln in bf16: it moves
  // from `other` (dln) to the [act] tensors.
  const int64_t row_out = s.act_bytes < s.storage_bytes ? N * C : 0;
  const int64_t dln_act = int64_t(s.heads_local) * s.head_dim == C ? N * C : 0;
  return (saved + other - dln_act) * s.storage_bytes +
         (saved_act + N * C + N * Fl + 4 * N * Cl + row_out + dln_act) * s.act_bytes + saved_res * s.residual_bytes;
}

int64_t gemm_staging_bytes(const EncoderShape& s, int B, int T) {
  const int64_t N = int64_t(B) * T, C = s.hidden, Fl = s.ffn_local, V = s.vocab_local;
  const int64_t M = static_cast<int64_t>(s.masked_fraction * N) + B;
  const int64_t widest = std::max({N * (C + Fl),          // FFN-out wgrad: dout (N, C) + inp (N, Fl)
                                   N * Fl + C * Fl,       // FFN-out forward, FFN-in dgrad
                                   N * 4 * C + 3 * C * C,  // QKV wgrad / dgrad
                                   M * (C + V) + V * C,    // vocab projection on the masked rows
                                   // bf16 storage: FFN-in with its epilogue apart (if cuBLASLt refuses the fused
                                   // one), W16 + an fp32 N x Fl temporary (gemm.cu gemm_bf16_storage step 2)
                                   s.act_bytes == 2 ? 2 * N * Fl + C * Fl : int64_t(0)});
  return 2 * widest + 512;
}

int64_t MemoryPlan::total() const {
  int64_t t = 0;
  for (const auto& i : items) t += i.bytes;
  return t;
}

std::string MemoryPlan::report() const {
  std::ostringstream os;
  os << "GPU memory plan:\n";
  for (const auto& i : items) os << "  " << i.name << ": " << gib(i.bytes) << "\n";
  os << "  total: " << gib(total());
  return os.str();
}

MemoryPlan plan_training_memory(const TrainingMemoryRequest& q) {
  const int64_t P = q.params;
  MemoryPlan plan;
  plan.items = {{"parameters (bf16)", 2 * P},
                {"master weights (fp32)", 4 * P},
                {"gradients (fp32)", 4 * P},
                {"optimizer state (AdamW m, v fp32" + std::string(q.optimizer_shards > 1 ? ", ZeRO-1)" : ")"),
                 (8 * P + q.optimizer_shards - 1) / std::max(1, q.optimizer_shards)},
                {"activations (micro_batch " + std::to_string(q.micro_batch) + ", seq " + std::to_string(q.seq_len) +
                     ", recompute " + recompute_name(q.recompute) + ")",
                 activation_bytes(q.shape, q.micro_batch, q.seq_len, q.recompute)},
                {"bf16 GEMM operand staging", gemm_staging_bytes(q.shape, q.micro_batch, q.seq_len)},
                {"workspace + runtime reserve", q.workspace_bytes + q.reserve_bytes}};
  return plan;
}

int largest_fitting_micro_batch(TrainingMemoryRequest q, int64_t available, int limit) {
  int lo = 0, hi = limit;  // activations grow monotonically with the micro-batch: bisect
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    q.micro_batch = mid;
    if (plan_training_memory(q).total() <= available) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

std::string headroom_hint(const TrainingMemoryRequest& q, int64_t available) {
  const int64_t need = plan_training_memory(q).total();
  if (need > available) return "";
  const int fit = largest_fitting_micro_batch(q, available, std::max(4 * q.micro_batch, 8));
  if (fit < 2 * q.micro_batch) return "";
  std::ostringstream os;
  os << "GPU memory headroom: micro_batch " << q.micro_batch << " plans " << gib(need) << " of " << gib(available)
     << " free; up to train.micro_batch=" << fit
     << " fits, and larger micro-batches keep the GPU busier (erlangshen bench --largest-micro-batch times it)";
  return os.str();
}

void check_fits(const TrainingMemoryRequest& q, int64_t available) {
  const MemoryPlan plan = plan_training_memory(q);
  if (plan.total() <= available) return;
  std::ostringstream os;
  os << "this configuration needs " << gib(plan.total()) << " of GPU memory but " << gib(available)
     << " are available.\n" << plan.report() << "\n";
  const int fit = largest_fitting_micro_batch(q, available, q.micro_batch - 1);
  if (fit >= 1) {
    os << "It fits with train.micro_batch=" << fit << " (raise train.grad_accum to keep the global batch)";
  } else {
    std::string hint;
    for (Recompute r : {Recompute::Selective, Recompute::Full}) {
      if (static_cast<int>(r) <= static_cast<int>(q.recompute)) continue;
      TrainingMemoryRequest t = q;
      t.recompute = r;
      if (plan_training_memory(t).total() <= available) {
        hint = std::string("It fits with train.recompute=") + recompute_name(r);
        break;
      }
      t.micro_batch = 1;
      if (plan_training_memory(t).total() <= available) {
        hint = std::string("It fits with train.recompute=") + recompute_name(r) + " and train.micro_batch=" +
               std::to_string(largest_fitting_micro_batch(t, available, q.micro_batch));
        break;
      }
    }
    if (hint.empty())
      hint = "Even one sample per micro-batch with full recompute does not fit: shard the model over more GPUs "
             "(parallel.tp) or the optimizer state (parallel.zero1=true with parallel.dp > 1)";
    os << hint;
  }
  throw Error(os.str());
}

void device_memory_info(int64_t* free_bytes, int64_t* total_bytes) {
  size_t f = 0, t = 0;
  cudaError_t e = cudaMemGetInfo(&f, &t);
  ERL_CHECK(e == cudaSuccess, "cudaMemGetInfo: " << cudaGetErrorString(e));
  *free_bytes = static_cast<int64_t>(f);
  *total_bytes = static_cast<int64_t>(t);
}

DeviceBuffer::DeviceBuffer(int64_t bytes, const char* what) : bytes_(bytes) {
  if (bytes <= 0) return;
  cudaError_t e = cudaMalloc(&ptr_, static_cast<size_t>(bytes));
  ERL_CHECK(e == cudaSuccess, "cannot allocate " << gib(bytes) << " of GPU memory for " << what << ": "
                                                 << cudaGetErrorString(e));
}

DeviceBuffer::~DeviceBuffer() {
  if (ptr_) cudaFree(ptr_);
}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& o) noexcept {
  if (this != &o) {
    if (ptr_) cudaFree(ptr_);
    ptr_ = o.ptr_, bytes_ = o.bytes_;
    o.ptr_ = nullptr, o.bytes_ = 0;
  }
  return *this;
}

TrainingBuffers allocate_training_buffers(const TrainingMemoryRequest& q) {
  int64_t free_bytes = 0, total_bytes = 0;
  device_memory_info(&free_bytes, &total_bytes);
  check_fits(q, free_bytes);
  const MemoryPlan plan = plan_training_memory(q);
  TrainingBuffers b;
  b.params_bf16 = DeviceBuffer(plan.items[0].bytes, "parameters (bf16)");
  b.master = DeviceBuffer(plan.items[1].bytes, "master weights");
  b.grads = DeviceBuffer(plan.items[2].bytes, "gradients");
  b.optimizer = DeviceBuffer(plan.items[3].bytes, "optimizer state");
  b.activations = DeviceBuffer(plan.items[4].bytes, "activations");
  return b;
}

}  // namespace erlangshen::cuda
