// MegatronBERT (DESIGN §3): pre-LN encoder, no embedding LayerNorm, final LayerNorm; MLM head with the
// decoder tied to the word embeddings, pooler + SOP head, or pooler + classifier for fine-tuning.
// One TP rank's shard of the model: parameters and gradients live in two flat buffers carved by the table.
// Memory: parameters, gradients and the activation arenas live where the Exec runs (host memory on the CPU,
// device memory on CUDA; runtime/device_buffer.h). params()/grads() point there; host code that reads or writes
// parameter values (checkpoints, export, fine-tuning weight loading) goes through download_params() /
// upload_params(), which are plain copies on the CPU. Batch inputs are host arrays: the model stages them into
// the arena (no copy on the CPU) and reads back only the small loss statistics.
//
// Tensor parallelism (Megatron), per layer with TP group size p:
//   QKV (column-parallel):   [Q K V]_i = LN(x) [Wq_i Wk_i Wv_i]^T   (heads split across ranks; input via copy_to_tp)
//   attention-out (row-par.): y = sum_i ctx_i Wo_i^T + bo            (reduce_from_tp)
//   FFN-in  (column-par.):   h_i = gelu(LN(x) W1_i^T + b1_i)
//   FFN-out (row-parallel):  y = sum_i h_i W2_i^T + b2                (reduce_from_tp)
//   word embedding (vocab-parallel rows) and the MLM cross-entropy over vocab shards (never full logits).
// The replicated bias of a row-parallel layer is added on TP rank 0 only, before the all-reduce.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include "data_pipeline/batch.h"
#include "model/param_layout.h"
#include "parallel/communicator.h"
#include "runtime/arena.h"
#include "runtime/attention_kernel.h"
#include "runtime/device_buffer.h"
#include "runtime/ops.h"
#include "runtime/token_rows.h"

namespace erlangshen {

// Token inputs of one micro-batch: (B, T) row-major arrays.
struct EncoderInputs {
  int B = 0, T = 0;
  const int32_t* ids = nullptr;     // (B, T)
  const int32_t* types = nullptr;   // (B, T)
  const uint8_t* valid = nullptr;   // (B, T) 1 = real token
};

// Where this micro-batch sits in the run, for dropout keys (DESIGN §2).
struct RngContext {
  uint64_t seed = 0;
  int64_t step = 0;         // optimizer step
  int64_t sample_base = 0;  // index of local sample 0 within the step's global batch
  bool train = false;       // dropout on
};

struct PretrainLosses {
  double mlm_sum = 0.0;   // sum of MLM cross-entropy over this micro-batch's masked positions
  double sop_sum = 0.0;   // sum of SOP cross-entropy over its samples
  int64_t mlm_count = 0;
  int64_t sop_count = 0;
  int64_t mlm_correct = 0;
  int64_t sop_correct = 0;
};

template <class T>
class MegatronBert {
 public:
  MegatronBert(const ModelConfig& config, ModelHeads heads, Communicator& tp, double dropout, double attention_dropout,
               Exec exec = {});
  ~MegatronBert();

  const ModelConfig& config() const { return config_; }
  const ParamTable& table() const { return table_; }
  const Exec& exec() const { return exec_; }
  // Flat buffers in the Exec's memory (device pointers on CUDA). Writable access to the parameters marks the bf16
  // compute copy (bf16 activation storage) stale: the next forward refreshes it.
  T* params() {
    weights_changed();
    return params_.data();
  }
  T* grads() { return grads_.data(); }
  // The bf16 GEMM copy of the weights (bf16 activation storage; null otherwise, and on a double model), for an
  // optimizer that rewrites it from the weights it updates (AdamW::step); compute_weights_rewritten() then marks it
  // current, so the next forward does not copy it again. Only when every parameter tensor was rewritten.
  bf16* compute_weights_for_update() { return compute_weights_.empty() ? nullptr : compute_weights_.data(); }
  void compute_weights_rewritten() { compute_weights_stale_ = false; }
  const T* params() const { return params_.data(); }
  size_t num_params() const { return params_.size(); }
  T* param(const std::string& name) {
    weights_changed();
    return params_.data() + table_.at(name).offset;
  }
  T* grad(const std::string& name) { return grads_.data() + table_.at(name).offset; }
  // Host copies of the flat buffers (num_params() elements): checkpoint save/load, export, weight loading,
  // tests. On the CPU plain copies (no-ops when `host` is params() itself); on CUDA device <-> host.
  void download_params(T* host) const { params_.copy_to_host(host, 0, params_.size()); }
  void upload_params(const T* host) {
    weights_changed();
    params_.copy_from_host(host, 0, params_.size());
  }
  std::vector<T> params_to_host() const { return params_.to_host(); }
  std::vector<T> grads_to_host() const { return grads_.to_host(); }
  // Runs edit(T* host_params) on the parameter values in host memory (weight loading): params() itself on the
  // CPU; on CUDA a downloaded copy, uploaded again afterwards.
  template <class F>
  void edit_params_on_host(F&& edit) {
    if (!exec_.on_device()) {
      edit(params());
      return;
    }
    std::vector<T> host = params_to_host();
    edit(host.data());
    upload_params(host.data());
  }
  // Weight init keyed by global index (DESIGN §2), computed on the host, then copied to the device on CUDA.
  void initialize(uint64_t seed);
  void zero_grads();
  // zero_grads() for a new optimizer step, less the traffic: zeroes every gradient but the encoder layers' four GEMM
  // weights (QKV, out-projection, FFN-in, FFN-out: 96% of the 1.3B model's parameters), whose weight-gradient GEMMs
  // in the next backward overwrite them instead of adding to zeros (on CUDA the GEMM's beta is 0, so that memory is
  // neither zeroed nor read). Backward passes after it accumulate as usual. The same gradients as zero_grads()
  // followed by the same passes; until a backward has run, those gradients are undefined. The zeroing itself waits
  // for the next backward (the gradients keep their values until then: an optimizer step still reading them on
  // another stream is awaited by the forward before it, see set_params_needed_hook).
  void start_gradient_accumulation();
  // Called by every forward before it reads the parameters [0, end) (flat offsets; `end` grows through a forward:
  // the embeddings with layer 0's first LayerNorm, then each layer with the next one's first LayerNorm, the last
  // with the final LayerNorm and the heads, end = num_params()), so that an optimizer step still running on another
  // stream (the trainer's overlapped update) is awaited range by range. Null (the default): nothing to wait for.
  using ParamsNeededHook = std::function<void(size_t end)>;
  void set_params_needed_hook(ParamsNeededHook hook) { params_needed_ = std::move(hook); }
  // The flat ranges [bounds[i], bounds[i + 1]) in the order the forward reads them: the embeddings, then per layer
  // its first LayerNorm (which the layer before forms, fused with its residual add) and the rest of it, then the
  // final LayerNorm with the heads (bounds: 0, each layer's first offset and the end of its first LayerNorm, the
  // heads' first offset, num_params()).
  std::vector<size_t> forward_read_bounds() const;

  // Activation recompute (runtime/config.h): trades backward FLOPs for activation memory; gradients are the
  // same bits under every mode. Set before the first step (a change re-plans the arena at the next reserve).
  void set_recompute(Recompute r);
  Recompute recompute() const { return recompute_; }
  // Storage of the large activations and backward temporaries (runtime/act.h, model/activations.h [act]): T, or
  // bf16 (float models) to halve their memory and traffic; the math stays fp32. Set before the first step. bf16
  // also keeps a bf16 compute copy of the parameters for the encoder's GEMMs (the values those GEMMs would round
  // the fp32 weights to, so results are unchanged), refreshed at the first forward after any write access above.
  void set_activation_storage(ActivationStorage s);
  ActivationStorage activation_storage() const { return activations_; }
  // Storage of the residual stream and its gradient (the embeddings' output, every layer's x1, x2, and dres:
  // model/activations.h [res]): T, or bf16 (float models; train.residual=bf16, Megatron-LM's default under bf16):
  // each residual add rounds its sum once and the LayerNorm after it normalises, and its backward reads, the rounded
  // value; each LayerNorm backward's addition into the gradient is rounded once. Halves the stream's memory and the
  // traffic of every LayerNorm forward and backward. Set before the first step (a change re-plans the arena at the
  // next reserve).
  void set_residual_storage(ActivationStorage s);
  ActivationStorage residual_storage() const { return residual_; }
  // The attention implementation (runtime/attention_kernel.h). Flash needs a CUDA Exec whose Context computes in
  // bf16 and a head dim the kernels take (an error here otherwise, naming train.attention); it saves 2 floats per
  // query row and head instead of the (B, NH, T, T) probabilities. Set before the first step.
  void set_attention_kernel(AttentionKernel k);
  AttentionKernel attention_kernel() const { return attention_; }

  // Sizes the activation arena for micro-batches of up to B x T tokens (called once; again only if larger).
  void reserve(int B, int Tn);
  size_t activation_bytes() const { return arena_.capacity() + head_arena_.capacity(); }
  // True when [p, p + bytes) lies in the model's memory in the Exec: parameters, gradients or an activation
  // arena (what device collectives may touch; host scalars never do).
  bool owns(const void* p, size_t bytes) const;

  // Pretraining micro-batch: forward, and when `backward`, gradients of
  //   loss = mlm_sum / mlm_denominator + sop_sum / sop_denominator
  // accumulated (+=) into grads(). Denominators are global (whole step, all DP ranks) so every layout
  // computes the same loss.
  PretrainLosses pretrain_forward_backward(const PretrainBatch& batch, const RngContext& rng, double mlm_denominator,
                                           double sop_denominator, bool backward);

  // Classification: logits (B, num_classes) on every TP rank; then backward from dlogits (B, num_classes).
  // logits and dlogits are in the Exec's memory.
  void classify_forward(const EncoderInputs& in, const RngContext& rng, T* logits);
  void classify_backward(const T* dlogits);

  // MLM logits of this TP rank's vocab shard at flat positions (M, host array): out (M, V_local, in the Exec's
  // memory); vocab_start() gives the first id of the shard.
  void mlm_logits(const EncoderInputs& in, const int32_t* positions, int M, T* out);
  int vocab_start() const { return vocab_start_; }
  int vocab_local() const { return vocab_local_; }

  // Gradient-ready hook (lets the DP reducer overlap communication with backward): while a hook is set,
  // every backward calls it with the flat range [begin, end) of parameters whose gradients are final for that
  // micro-batch, in the order of grad_ready_segments(): heads + final LayerNorm, layer L-1, ..., layer 0,
  // embeddings. The ranges tile [0, num_params()).
  using GradReadyHook = std::function<void(size_t begin, size_t end)>;
  void set_grad_ready_hook(GradReadyHook hook) { grad_ready_ = std::move(hook); }
  std::vector<std::pair<size_t, size_t>> grad_ready_segments() const;

 private:
  struct LayerActs;
  struct Acts;
  struct LayerNormOut;
  void plan_arena(Arena& arena, int B, int Tn);
  const T* encode_forward(const EncoderInputs& in, const RngContext& rng);
  // Parameter values for the ops (read-only: does not mark the compute copy stale).
  const T* value(const std::string& name) const { return params_.data() + table_.at(name).offset; }
  // A GEMM weight: the bf16 compute copy under bf16 activation storage, else the T values.
  Act<const T> gemm_weight(const std::string& name) const;
  void weights_changed() { compute_weights_stale_ = true; }
  void refresh_compute_weights();
  // Layer l from its input x (N, C) to a.x2, saving what backward reads into `a`. ln1_ready: a.ln1 and its
  // statistics already hold LN1(x) (formed with the residual add before it); next: where LN(x2) goes (the next
  // layer's LN1 or the final LayerNorm), formed with the residual add, or nullptr.
  void layer_forward(int l, Act<const T> x, LayerActs& a, bool ln1_ready, const LayerNormOut* next);
  // The LayerNorm that reads layer l's input: layer l's LN1, or the final LayerNorm for l == layers.
  LayerNormOut layer_norm_before(int l);
  void encode_backward(T* dhidden);  // dhidden (N, C) = gradient at the final LayerNorm output; consumed
  void pooler_forward(const T* hidden, int B, int Tn);
  void pooler_backward(const T* dpooled, T* dhidden, int B, int Tn);
  // The MLM head's transform of the M masked rows of hidden (B T, C) at positions: gather -> dense -> GeLU ->
  // LayerNorm, into the head activations mlm_g, mlm_t, mlm_a, mlm_u (M, C) (with mlm_mean / mlm_rstd).
  void mlm_transform_forward(const T* hidden, const int32_t* positions, int M);
  void ensure_head_capacity(int M);
  DropoutSpec dropout_spec(RngPurpose purpose, int layer, int site, double p, uint8_t* keep_mask = nullptr) const;

  ModelConfig config_;
  ModelHeads heads_;
  Communicator& tp_;
  double dropout_, attention_dropout_;
  Exec exec_;
  ParamTable table_;
  Buffer<T> params_, grads_;
  Buffer<bf16> compute_weights_;  // bf16 copy of params_ (bf16 activation storage only)
  bool compute_weights_stale_ = true;
  int heads_local_, hidden_local_, ffn_local_, vocab_start_, vocab_local_;
  Arena arena_, head_arena_;
  int cap_B_ = 0, cap_T_ = 0, cap_M_ = 0;
  Recompute recompute_ = Recompute::None;
  ActivationStorage activations_ = ActivationStorage::FP32;
  ActivationStorage residual_ = ActivationStorage::FP32;
  // set by start_gradient_accumulation(), cleared by the next backward: its layer weight-gradient GEMMs overwrite
  bool overwrite_layer_weight_grads_ = false;
  bool zero_before_backward_ = false;  // start_gradient_accumulation's zeroing, due before the next backward
  std::vector<std::pair<size_t, size_t>> zeroed_at_start_;  // [begin, end) ranges start_gradient_accumulation zeroes
  AttentionKernel attention_ = AttentionKernel::Unfused;
  std::unique_ptr<Acts> acts_;
  RngContext rng_;      // of the last forward (backward reuses it)
  EncoderInputs in_;    // of the last forward
  TokenRowsBuilder token_rows_;  // the last forward's ids by vocabulary row (host), for the word-embedding backward
  TokenRows token_rows_view_;     // the same where the ops run
  GradReadyHook grad_ready_;
  ParamsNeededHook params_needed_;
  std::vector<size_t> layer_bounds_;  // (L + 1): flat offset of layer l's first parameter; [L]: end of layer L-1
  std::vector<size_t> ln1_ends_;      // (L): flat end of layer l's first LayerNorm (its first parameters)
  std::vector<T> host_stats_[3];      // host copies of loss statistics read back from the device (CUDA only)
  std::vector<int32_t> host_index_;   // cls_index built on the host before it is copied into the arena
  void grads_ready(size_t begin, size_t end) {
    if (grad_ready_) grad_ready_(begin, end);
  }
  void params_needed(size_t end) {
    if (params_needed_) params_needed_(end);
  }
  // End of the parameters the forward reads through layer l (l = -1: the embeddings), see set_params_needed_hook.
  size_t params_read_through(int l) const;
  // The zeroing start_gradient_accumulation() leaves to the first backward (every backward calls it first).
  void begin_backward();
};

}  // namespace erlangshen
