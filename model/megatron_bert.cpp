// MegatronBert: construction, initialisation and activation planning.
#include "model/megatron_bert.h"

#include <algorithm>

#include "model/activations.h"

namespace erlangshen {

template <class T>
MegatronBert<T>::MegatronBert(const ModelConfig& config, ModelHeads heads, Communicator& tp, double dropout,
                              double attention_dropout, Exec exec)
    : config_(config), heads_(heads), tp_(tp), dropout_(dropout), attention_dropout_(attention_dropout), exec_(exec) {
  const int p = tp.size();
  ERL_CHECK(config.hidden % config.heads == 0, "model.heads must divide model.hidden");
  ERL_CHECK(config.heads % p == 0, "parallel.tp must divide model.heads");
  ERL_CHECK(config.ffn % p == 0, "parallel.tp must divide model.ffn");
  table_ = build_param_table(config, heads, tp.rank(), p);
  params_ = Buffer<T>(exec, table_.total(), "parameters");
  grads_ = Buffer<T>(exec, table_.total(), "gradients");
  heads_local_ = config.heads / p;
  hidden_local_ = heads_local_ * config.head_dim();
  ffn_local_ = config.ffn / p;
  const auto& word = table_.at("bert.embeddings.word_embeddings.weight");
  vocab_local_ = static_cast<int>(word.local_shape[0]);
  vocab_start_ = static_cast<int>(word.local_offset);
  acts_ = std::make_unique<Acts>();
  // Layer l's parameters are contiguous in the table; the embeddings come before layer 0 and the final
  // LayerNorm + heads after layer L-1 (grad_ready_segments relies on it).
  for (int l = 0; l < config.layers; ++l) layer_bounds_.push_back(table_.at(layer_prefix(l) + "attention.ln.weight").offset);
  layer_bounds_.push_back(table_.at("bert.encoder.ln.weight").offset);
  for (const auto& e : table_.entries()) {
    int layer = -1;
    for (int l = 0; l < config.layers && layer < 0; ++l)
      if (e.spec.name.rfind(layer_prefix(l), 0) == 0) layer = l;
    const size_t lo = layer < 0 ? 0 : layer_bounds_[layer], hi = layer < 0 ? 0 : layer_bounds_[layer + 1];
    const bool inside = e.offset >= lo && e.offset + e.numel <= hi;
    const bool in_any = e.offset >= layer_bounds_.front() && e.offset < layer_bounds_.back();
    ERL_CHECK(layer < 0 ? !in_any : inside, "parameter " << e.spec.name << " breaks the layer-contiguous table layout");
  }
  // Each layer begins with its first LayerNorm (which the layer before forms: forward_read_bounds relies on it).
  for (int l = 0; l < config.layers; ++l) {
    const auto& bias = table_.at(layer_prefix(l) + "attention.ln.bias");
    ERL_CHECK(bias.offset + bias.numel <= layer_bounds_[l + 1], "layer " << l << "'s first LayerNorm is not at its start");
    ln1_ends_.push_back(bias.offset + bias.numel);
  }
}

template <class T>
std::vector<std::pair<size_t, size_t>> MegatronBert<T>::grad_ready_segments() const {
  const int L = config_.layers;
  std::vector<std::pair<size_t, size_t>> s{{layer_bounds_[L], table_.total()}};
  for (int l = L - 1; l >= 0; --l) s.push_back({layer_bounds_[l], layer_bounds_[l + 1]});
  s.push_back({0, layer_bounds_[0]});
  return s;
}

template <class T>
MegatronBert<T>::~MegatronBert() = default;

template <class T>
bool MegatronBert<T>::owns(const void* p, size_t bytes) const {
  return params_.contains(p, bytes) || grads_.contains(p, bytes) || arena_.contains(p, bytes) ||
         head_arena_.contains(p, bytes);
}

template <class T>
void MegatronBert<T>::initialize(uint64_t seed) {
  if (!exec_.on_device()) {
    initialize_parameters(table_, params(), seed);
    return;
  }
  std::vector<T> host(params_.size(), T(0));
  initialize_parameters(table_, host.data(), seed);
  upload_params(host.data());  // marks the compute copy stale
  synchronize(exec_);  // `host` is freed on return
}

template <class T>
void MegatronBert<T>::zero_grads() {
  ops::fill(exec_, grads_.data(), static_cast<int64_t>(grads_.size()), T(0));
  overwrite_layer_weight_grads_ = false;
  zero_before_backward_ = false;
}

// The encoder layers' GEMM weights, whose gradients the encoder backward writes with matmul_backward's acc_dw.
namespace {
const char* const kLayerGemmWeights[] = {"attention.self.query.weight", "attention.output.dense.weight",
                                         "intermediate.dense.weight", "output.dense.weight"};
}  // namespace

template <class T>
void MegatronBert<T>::start_gradient_accumulation() {
  if (zeroed_at_start_.empty()) {  // [0, total) less the layer GEMM weights, in table order
    std::vector<std::pair<size_t, size_t>> skip;
    for (int l = 0; l < config_.layers; ++l)
      for (const char* name : kLayerGemmWeights) {
        const auto& e = table_.at(layer_prefix(l) + name);
        skip.push_back({e.offset, e.offset + e.numel});
      }
    std::sort(skip.begin(), skip.end());
    size_t at = 0;
    for (const auto& [b, e] : skip) {
      if (b > at) zeroed_at_start_.push_back({at, b});
      at = std::max(at, e);
    }
    if (at < table_.total()) zeroed_at_start_.push_back({at, table_.total()});
  }
  zero_before_backward_ = true;
  overwrite_layer_weight_grads_ = true;
}

template <class T>
void MegatronBert<T>::begin_backward() {
  if (!zero_before_backward_) return;
  for (const auto& [b, e] : zeroed_at_start_)
    ops::fill(exec_, grads_.data() + b, static_cast<int64_t>(e - b), T(0));
  zero_before_backward_ = false;
}

template <class T>
std::vector<size_t> MegatronBert<T>::forward_read_bounds() const {
  std::vector<size_t> bounds{0};
  for (int l = 0; l < config_.layers; ++l) {
    bounds.push_back(layer_bounds_[l]);
    bounds.push_back(ln1_ends_[l]);
  }
  bounds.push_back(layer_bounds_[config_.layers]);
  bounds.push_back(table_.total());
  return bounds;
}

template <class T>
size_t MegatronBert<T>::params_read_through(int l) const {
  // Layer l (the embeddings for l = -1) ends by forming the next layer's LN1 (the first parameters of layer l + 1)
  // or, after the last layer, the final LayerNorm, which the heads follow.
  return l + 1 < config_.layers ? ln1_ends_[l + 1] : table_.total();
}

template <class T>
DropoutSpec MegatronBert<T>::dropout_spec(RngPurpose purpose, int layer, int site, double p,
                                          uint8_t* keep_mask) const {
  DropoutSpec d;
  d.p = rng_.train ? static_cast<float>(p) : 0.0f;
  d.keep_mask = keep_mask;
  d.key = derive_key(rng_.seed, purpose, static_cast<uint64_t>(rng_.step), static_cast<uint32_t>(layer),
                     static_cast<uint32_t>(site));
  return d;
}

template <class T>
void MegatronBert<T>::plan_arena(Arena& a, int B, int Tn) {
  const int64_t N = static_cast<int64_t>(B) * Tn, C = config_.hidden;
  const int64_t Cl = hidden_local_, Fl = ffn_local_;
  Acts& s = *acts_;
  s.B = B;
  s.T_ = Tn;
  // An Act tensor of n elements in `storage`: T, or bf16. [act] tensors (activations.h) follow set_activation_storage,
  // [res] tensors (the residual stream and its gradient) set_residual_storage.
  auto stored = [&](ActivationStorage storage, int64_t n, const char* what) {
    return storage == ActivationStorage::BF16 ? Act<T>::half(a.alloc<bf16>(n, what)) : Act<T>(a.alloc<T>(n, what));
  };
  auto act = [&](int64_t n, const char* what) { return stored(activations_, n, what); };
  auto res = [&](int64_t n, const char* what) { return stored(residual_, n, what); };
  const cpu::AttentionShape shape{B, Tn, heads_local_, config_.head_dim()};
  s.emb = res(N * C, "emb");
  // Dropout keep masks (1 byte per element) so backward need not redraw Philox: CPU only (the GPU redraws faster
  // than it could read them back). nullptr = redraw.
  const bool keep_masks = exec_.device == Device::CPU;
  auto mask = [&](int64_t n, const char* what) { return keep_masks ? a.alloc<uint8_t>(n, what) : nullptr; };
  s.emb_keep = mask(N * C, "embedding dropout mask");
  // Per-layer saved tensors. Under recompute some are allocated for layer 0 only and shared by every layer (they
  // are rebuilt before each layer's backward): Selective shares the attention probabilities (and their dropout
  // mask); Full shares everything but the layer output x2 (= the next layer's input).
  // Flash attention saves 2 floats per query row and head in place of the probabilities, per layer under every
  // mode but Full (it has nothing for Selective to recompute).
  const bool flash = attention_ == AttentionKernel::Flash;
  const int64_t probs_n = static_cast<int64_t>(B) * heads_local_ * Tn * (flash ? 2 : Tn);
  const bool probs_per_layer = flash ? recompute_ != Recompute::Full : recompute_ == Recompute::None;
  s.layers.assign(config_.layers, LayerActs{});
  for (int i = 0; i < config_.layers; ++i) {
    LayerActs& l = s.layers[i];
    const bool first = i == 0;
    if (!first) l = s.layers[0];  // the shared pointers; the tensors this layer owns are replaced below
    if (first || recompute_ != Recompute::Full) {
      l.ln1 = act(N * C, "ln1");
      l.ln1_mean = a.alloc<T>(N);
      l.ln1_rstd = a.alloc<T>(N);
      l.qkv = act(N * 3 * Cl, "qkv");
      l.ctx = act(N * Cl, "ctx");
      l.x1 = res(N * C, "x1");
      l.ln2 = act(N * C, "ln2");
      l.ln2_mean = a.alloc<T>(N);
      l.ln2_rstd = a.alloc<T>(N);
      l.pre = act(N * Fl, "ffn pre");
      l.act = act(N * Fl, "ffn act");
      l.keep1 = mask(N * C, "dropout mask");
      l.keep2 = mask(N * C, "dropout mask");
    }
    if (first || probs_per_layer) {
      l.probs = flash ? Act<T>(a.alloc<T>(probs_n, "attention row statistics"))
                      : act(ops::attention_probs_elems(exec_, shape, activations_ == ActivationStorage::BF16),
                            "attention probs");
      l.attn_keep = mask(probs_n, "attention dropout mask");
    }
    l.x2 = res(N * C, "x2");
  }
  s.hidden = a.alloc<T>(N * C, "hidden");
  s.lnf_mean = a.alloc<T>(N);
  s.lnf_rstd = a.alloc<T>(N);
  s.tmp = a.alloc<T>(N * C);
  // Tensors a TP all-reduce touches (the communicators carry T) are bf16 [act] tensors on one TP rank only.
  const bool bf16_unreduced = activations_ == ActivationStorage::BF16 && tp_.size() == 1;
  s.row_out = bf16_unreduced ? Act<T>::half(a.alloc<bf16>(N * C, "row-parallel output")) : Act<T>(s.tmp);
  s.dres = res(N * C, "residual gradient");
  s.dtmp = act(N * C, "row-parallel output gradient");
  s.dln = bf16_unreduced ? Act<T>::half(a.alloc<bf16>(N * C, "LayerNorm input gradient")) : Act<T>(a.alloc<T>(N * C));
  s.dctx = act(N * Cl, "ctx gradient");
  s.dqkv = act(N * 3 * Cl, "qkv gradient");
  s.dact = act(N * Fl, "ffn act gradient");
  const int64_t attn_scratch_n =
      flash ? ops::flash_attention_scratch_elems(shape) : ops::attention_scratch_elems(exec_, shape);
  s.attn_scratch = a.alloc<T>(attn_scratch_n, "attention scratch");
  s.cls_index = a.alloc<int32_t>(B);
  s.pool_in = a.alloc<T>(B * C);
  s.pool_pre = a.alloc<T>(B * C);
  s.pooled = a.alloc<T>(B * C);
  s.pool_drop = a.alloc<T>(B * C);
  s.dpool_a = a.alloc<T>(B * C);
  s.dpool_b = a.alloc<T>(B * C);
  const int K = std::max(2, config_.num_classes);
  s.head_logits = a.alloc<T>(static_cast<int64_t>(B) * K);
  s.head_rowmax = a.alloc<T>(B);
  s.head_sumexp = a.alloc<T>(B);
  s.head_target = a.alloc<T>(B);
  s.head_dloss = a.alloc<T>(B);
  s.head_labels = a.alloc<int32_t>(B);
  // Staging for the host inputs on CUDA (last, so the CPU layout above is unchanged).
  s.in_ids = a.alloc<int32_t>(N, "input ids");
  s.in_types = a.alloc<int32_t>(N, "token types");
  s.in_valid = a.alloc<uint8_t>(N, "attention mask");
  const int64_t listed_rows = std::min<int64_t>(N, vocab_local_);
  s.tok_row = a.alloc<int32_t>(listed_rows, "token rows");
  s.tok_start = a.alloc<int32_t>(listed_rows + 1, "token row starts");
  s.tok_tokens = a.alloc<int32_t>(N, "tokens by row");
}

template <class T>
void MegatronBert<T>::set_recompute(Recompute r) {
  if (r == recompute_) return;
  recompute_ = r;
  cap_B_ = cap_T_ = 0;  // the next reserve re-plans the arena
}

template <class T>
void MegatronBert<T>::set_activation_storage(ActivationStorage s) {
  if (s == activations_) return;
  ERL_CHECK((s == ActivationStorage::FP32 || std::is_same_v<T, float>), "bf16 activation storage needs a float model");
  activations_ = s;
  cap_B_ = cap_T_ = 0;  // the next reserve re-plans the arena
  compute_weights_ = s == ActivationStorage::BF16 ? Buffer<bf16>(exec_, params_.size(), "bf16 compute weights")
                                                  : Buffer<bf16>();
  compute_weights_stale_ = true;
}

template <class T>
void MegatronBert<T>::set_residual_storage(ActivationStorage s) {
  if (s == residual_) return;
  ERL_CHECK((s == ActivationStorage::FP32 || std::is_same_v<T, float>), "a bf16 residual stream needs a float model");
  residual_ = s;
  cap_B_ = cap_T_ = 0;  // the next reserve re-plans the arena
}

template <class T>
void MegatronBert<T>::set_attention_kernel(AttentionKernel k) {
  if (k == attention_) return;
  if (k == AttentionKernel::Flash) {
    const cpu::AttentionShape probe{1, 64, heads_local_, config_.head_dim()};
    ERL_CHECK((exec_.device == Device::CUDA && std::is_same_v<T, float>),
              "train.attention=flash runs on CUDA only (train.device=cuda); the CPU backend has the unfused attention");
    ERL_CHECK(ops::flash_attention_supported(exec_, probe),
              "train.attention=flash: head dim " << config_.head_dim()
                                                 << " with this GPU and math mode is not supported (head dim 64, 128 "
                                                    "or 256, bf16 math, enough shared memory per block); use "
                                                    "train.attention=unfused");
  }
  attention_ = k;
  cap_B_ = cap_T_ = 0;  // the next reserve re-plans the arena
}

template <class T>
void MegatronBert<T>::refresh_compute_weights() {
  if (compute_weights_.empty() || !compute_weights_stale_) return;
  params_needed(params_.size());
  if constexpr (std::is_same_v<T, float>)
    ops_bf16::copy_rounded_to_bf16(exec_, compute_weights_.data(), params_.data(), static_cast<int64_t>(params_.size()));
  compute_weights_stale_ = false;
}

template <class T>
Act<const T> MegatronBert<T>::gemm_weight(const std::string& name) const {
  const size_t offset = table_.at(name).offset;
  if (compute_weights_.empty()) return Act<const T>(params_.data() + offset);
  ERL_CHECK(!compute_weights_stale_, "MegatronBert: the bf16 compute weights are stale (refresh before the forward)");
  return Act<const T>::half(compute_weights_.data() + offset);
}

template <class T>
void MegatronBert<T>::reserve(int B, int Tn) {
  if (B <= cap_B_ && Tn <= cap_T_) return;
  B = std::max(B, cap_B_);
  Tn = std::max(Tn, cap_T_);
  Arena measure;
  plan_arena(measure, B, Tn);
  arena_.reserve(measure.bytes_needed(), exec_.device);
  plan_arena(arena_, B, Tn);
  cap_B_ = B;
  cap_T_ = Tn;
}

template <class T>
void MegatronBert<T>::ensure_head_capacity(int M) {
  if (M <= cap_M_) return;
  const int64_t Mc = std::max<int64_t>(M, cap_M_ * 3 / 2), C = config_.hidden;
  auto plan = [&](Arena& a) {
    Acts& s = *acts_;
    s.mlm_g = a.alloc<T>(Mc * C);
    s.mlm_t = a.alloc<T>(Mc * C);
    s.mlm_a = a.alloc<T>(Mc * C);
    s.mlm_u = a.alloc<T>(Mc * C);
    s.mlm_dt = a.alloc<T>(Mc * C);
    s.mlm_mean = a.alloc<T>(Mc);
    s.mlm_rstd = a.alloc<T>(Mc);
    s.mlm_logits = a.alloc<T>(Mc * vocab_local_, "MLM logits");
    s.mlm_stats = a.alloc<T>(3 * Mc);
    s.mlm_dloss = a.alloc<T>(Mc);
    s.mlm_positions = a.alloc<int32_t>(Mc);  // staging on CUDA
    s.mlm_labels = a.alloc<int32_t>(Mc);
  };
  Arena measure;
  plan(measure);
  head_arena_.reserve(measure.bytes_needed(), exec_.device);
  plan(head_arena_);
  cap_M_ = static_cast<int>(Mc);
}

template class MegatronBert<float>;
template class MegatronBert<double>;

}  // namespace erlangshen
