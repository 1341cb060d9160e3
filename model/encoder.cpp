// MegatronBert encoder: embeddings -> L pre-LN layers -> final LayerNorm, forward and backward.
//   x_0 = dropout(word[ids] + pos[t] + type[types])
//   x' = x + dropout(Attn(LN1(x)));   x'' = x' + dropout(MLP(LN2(x')));   hidden = LN_f(x_L)
// Dropout bits are keyed by (seed, purpose, step, layer, site) and the element's global index
// ((sample_base + b) * T + t) * C + c, so every layout draws the same mask.
// Every LayerNorm reads a residual stream just formed (x_0, x', x''): the two run as one op
// (ops::dropout_residual_layernorm_forward), and every LayerNorm backward but layer 0's LN1 forms the dropout
// gradient that comes next in the backward (ops::layernorm_backward_dropout), across the layer boundary too. The
// same results as the ops one after the other; on the GPU one pass over the residual stream fewer each.
// The residual stream (x_0, x', x'') and its gradient dres are [res] tensors (model/activations.h): T, or bf16 under
// train.residual=bf16. The first backward after start_gradient_accumulation() writes the four GEMM weights'
// gradients of every layer instead of adding to them (acc_dw false: megatron_bert.cpp kLayerGemmWeights).
#include "model/activations.h"
#include "parallel/mappings.h"

namespace erlangshen {

namespace {
struct LayerParams {
  std::string p;
  explicit LayerParams(int l) : p(layer_prefix(l)) {}
  std::string operator()(const char* name) const { return p + name; }
};
}  // namespace

template <class T>
typename MegatronBert<T>::LayerNormOut MegatronBert<T>::layer_norm_before(int l) {
  Acts& s = *acts_;
  if (l == config_.layers)
    return {Act<T>(s.hidden), s.lnf_mean, s.lnf_rstd, value("bert.encoder.ln.weight"), value("bert.encoder.ln.bias")};
  LayerActs& a = s.layers[l];
  const LayerParams P(l);
  return {a.ln1, a.ln1_mean, a.ln1_rstd, value(P("attention.ln.weight")), value(P("attention.ln.bias"))};
}

template <class T>
void MegatronBert<T>::layer_forward(int l, Act<const T> x, LayerActs& a, bool ln1_ready, const LayerNormOut* next) {
  Acts& s = *acts_;
  const EncoderInputs& in = in_;
  const int B = in.B, Tn = in.T, C = config_.hidden, Cl = hidden_local_, Fl = ffn_local_;
  const int N = B * Tn;
  const int64_t NC = static_cast<int64_t>(N) * C;
  const int64_t hidden_offset = rng_.sample_base * Tn * C;
  const bool rank0 = tp_.rank() == 0;
  const cpu::AttentionShape shape{B, Tn, heads_local_, config_.head_dim(), rng_.sample_base,
                                  tp_.rank() * heads_local_, config_.heads};
  LayerParams P(l);
  // attention block
  if (!ln1_ready)
    ops::layernorm_forward(exec_, a.ln1, a.ln1_mean, a.ln1_rstd, x, value(P("attention.ln.weight")),
                           value(P("attention.ln.bias")), N, C, config_.layernorm_eps);
  tp::copy_to_tp_forward(tp_, a.ln1, NC);
  ops::matmul_forward(exec_, a.qkv, a.ln1, gemm_weight(P("attention.self.query.weight")),
                      value(P("attention.self.query.bias")), N, C, 3 * Cl);
  const DropoutSpec attn_drop = dropout_spec(RngPurpose::AttentionDropout, l, 0, attention_dropout_, a.attn_keep);
  if (attention_ == AttentionKernel::Flash)
    ops::flash_attention_forward(exec_, a.ctx, a.probs.f, s.attn_scratch, a.qkv, in.valid, shape, attn_drop);
  else
    ops::attention_forward(exec_, a.ctx, a.probs, s.attn_scratch, a.qkv, in.valid, shape, attn_drop);
  ops::matmul_forward(exec_, s.row_out, a.ctx, gemm_weight(P("attention.output.dense.weight")),
                      rank0 ? value(P("attention.output.dense.bias")) : nullptr, N, Cl, C);
  tp::reduce_from_tp_forward(tp_, s.row_out, NC);
  // x1 = x + dropout(row_out), ln2 = LN(x1)
  ops::dropout_residual_layernorm_forward(exec_, a.x1, a.ln2, a.ln2_mean, a.ln2_rstd, x, s.row_out,
                                          value(P("ln.weight")), value(P("ln.bias")), N, C, config_.layernorm_eps,
                                          dropout_spec(RngPurpose::HiddenDropout, l, 0, dropout_, a.keep1),
                                          hidden_offset);
  // MLP block
  tp::copy_to_tp_forward(tp_, a.ln2, NC);
  ops::matmul_bias_gelu_forward(exec_, a.act, a.pre, a.ln2, gemm_weight(P("intermediate.dense.weight")),
                                value(P("intermediate.dense.bias")), N, C, Fl, config_.activation);
  ops::matmul_forward(exec_, s.row_out, a.act, gemm_weight(P("output.dense.weight")),
                      rank0 ? value(P("output.dense.bias")) : nullptr, N, Fl, C);
  tp::reduce_from_tp_forward(tp_, s.row_out, NC);
  const DropoutSpec out_drop = dropout_spec(RngPurpose::HiddenDropout, l, 1, dropout_, a.keep2);
  if (next)  // x2 = x1 + dropout(row_out), and the LayerNorm that reads it
    ops::dropout_residual_layernorm_forward(exec_, a.x2, next->out, next->mean, next->rstd, Act<const T>(a.x1),
                                            s.row_out, next->weight, next->bias, N, C, config_.layernorm_eps,
                                            out_drop, hidden_offset);
  else
    ops::dropout_residual_forward(exec_, a.x2, Act<const T>(a.x1), s.row_out, NC, out_drop, hidden_offset);
}

template <class T>
const T* MegatronBert<T>::encode_forward(const EncoderInputs& host_in, const RngContext& rng) {
  reserve(host_in.B, host_in.T);
  refresh_compute_weights();
  rng_ = rng;
  Acts& s = *acts_;
  const int B = host_in.B, Tn = host_in.T, C = config_.hidden;
  const int N = B * Tn;
  // Token inputs where the ops run (the host arrays themselves on the CPU); backward reuses them.
  in_ = host_in;
  in_.ids = stage_input(exec_, s.in_ids, host_in.ids, N);
  in_.types = stage_input(exec_, s.in_types, host_in.types, N);
  in_.valid = stage_input(exec_, s.in_valid, host_in.valid, N);
  const EncoderInputs& in = in_;
  const int64_t NC = static_cast<int64_t>(N) * C;
  const int64_t hidden_offset = rng.sample_base * Tn * C;

  // embeddings (word lookup is vocab-parallel: rows outside this shard contribute 0, then all-reduce)
  params_needed(params_read_through(-1));
  ops::word_embedding_forward(exec_, s.tmp, in.ids, value("bert.embeddings.word_embeddings.weight"), N, C, vocab_start_,
                              vocab_local_);
  tp::reduce_from_tp_forward(tp_, s.tmp, NC);
  ops::position_type_embedding_forward(exec_, s.tmp, in.types, value("bert.embeddings.position_embeddings.weight"),
                                       value("bert.embeddings.token_type_embeddings.weight"), B, Tn, C);
  // x_0 = dropout(embeddings), and layer 0's LN1 (the final LayerNorm without layers)
  const LayerNormOut first = layer_norm_before(0);
  ops::dropout_residual_layernorm_forward(exec_, s.emb, first.out, first.mean, first.rstd,
                                          Act<const T>(), s.tmp, first.weight, first.bias, N, C,
                                          config_.layernorm_eps,
                                          dropout_spec(RngPurpose::EmbeddingDropout, 0, 0, dropout_, s.emb_keep),
                                          hidden_offset);
  Act<const T> x = s.emb;
  for (int l = 0; l < config_.layers; ++l) {
    const LayerNormOut next = layer_norm_before(l + 1);
    params_needed(params_read_through(l));
    layer_forward(l, x, s.layers[l], true, &next);
    x = s.layers[l].x2;
  }
  // The ids by vocabulary row for the word-embedding backward, built on the host (~0.3 ms for 53k tokens) once the
  // forward is queued, so the device is busy meanwhile.
  token_rows_.build(host_in.ids, N, vocab_start_, vocab_local_);
  const int listed = token_rows_.rows();
  token_rows_view_ = TokenRows{listed, stage_input(exec_, s.tok_row, token_rows_.row().data(), listed),
                               stage_input(exec_, s.tok_start, token_rows_.start().data(), listed + 1),
                               stage_input(exec_, s.tok_tokens, token_rows_.tokens().data(), token_rows_.tokens().size())};
  return s.hidden;
}

template <class T>
void MegatronBert<T>::encode_backward(T* dhidden) {
  Acts& s = *acts_;
  const EncoderInputs& in = in_;
  const int B = in.B, Tn = in.T, C = config_.hidden, Cl = hidden_local_, Fl = ffn_local_;
  const int N = B * Tn;
  const int64_t NC = static_cast<int64_t>(N) * C;
  const int64_t hidden_offset = rng_.sample_base * Tn * C;
  cpu::AttentionShape shape{B, Tn, heads_local_, config_.head_dim(), rng_.sample_base, tp_.rank() * heads_local_,
                            config_.heads};
  const Act<const T> x_last = config_.layers > 0 ? s.layers.back().x2 : s.emb;
  // the layer weight gradients: overwritten by the first backward after start_gradient_accumulation(), else added
  const bool acc_dw = !overwrite_layer_weight_grads_;
  overwrite_layer_weight_grads_ = false;

  // The dropout in front of a residual add, as the LayerNorm backward before it applies it to dres: layer l's
  // output dropout (site 1). Under full recompute its mask is redrawn rather than read from the shared keep2 buffer
  // (CPU), which then holds layer l + 1's, the layer recomputed last (the same bits either way).
  auto output_dropout = [&](int l) {
    return dropout_spec(RngPurpose::HiddenDropout, l, 1, dropout_, recompute_ == Recompute::Full ? nullptr
                                                                                                  : s.layers[l].keep2);
  };
  // LayerNorm backward into dres (accumulated); for l >= 0 also s.dtmp = dropout'(dres) through layer l's output
  // dropout, the next op of the backward.
  auto ln_backward = [&](int l, T* dw, T* db, Act<const T> dout, Act<const T> inp, const T* w, const T* mean,
                         const T* rstd) {
    if (l < 0) return ops::layernorm_backward(exec_, s.dres, dw, db, dout, inp, w, mean, rstd, N, C);
    ops::layernorm_backward_dropout(exec_, s.dres, dw, db, s.dtmp, dout, inp, w, mean, rstd, N, C, output_dropout(l),
                                    hidden_offset);
  };

  // final LayerNorm: dres = dLN_f / dx_L; dtmp = dropout'(dres) of layer L-1's output
  const Act<T> dres = s.dres;
  ops::zero(exec_, dres, NC);
  ln_backward(config_.layers - 1, grad("bert.encoder.ln.weight"), grad("bert.encoder.ln.bias"), dhidden, x_last,
              value("bert.encoder.ln.weight"), s.lnf_mean, s.lnf_rstd);
  grads_ready(layer_bounds_[config_.layers], table_.total());  // heads + final LayerNorm are final

  for (int l = config_.layers - 1; l >= 0; --l) {
    LayerActs& a = s.layers[l];
    LayerParams P(l);
    const Act<const T> x = l > 0 ? s.layers[l - 1].x2 : s.emb;
    // Full recompute: the layer's saved tensors live in buffers shared by all layers; rebuild layer l's from its
    // input (same dropout keys, so the same bits; a.x2 is rewritten with the value it already holds).
    if (recompute_ == Recompute::Full) layer_forward(l, x, a, false, nullptr);
    // MLP block: x2 = x1 + dropout(act W2^T + b2), act = gelu(ln2 W1^T + b1), ln2 = LN(x1). s.dtmp = dropout'(dres)
    // already (the LayerNorm backward before).
    tp::reduce_from_tp_backward(tp_, s.dtmp, NC);
    // dact = d(GeLU input); the FFN-in bias gradient (its column sums) comes with the FFN-in weight gradient
    ops::matmul_gelu_backward(exec_, s.dact, grad(P("output.dense.weight")), grad(P("output.dense.bias")),
                              static_cast<T*>(nullptr), s.dtmp, a.act, gemm_weight(P("output.dense.weight")), a.pre, N,
                              Fl, C, config_.activation, acc_dw);
    ops::matmul_backward(exec_, s.dln, grad(P("intermediate.dense.weight")), grad(P("intermediate.dense.bias")), s.dact,
                         a.ln2, gemm_weight(P("intermediate.dense.weight")), N, C, Fl, false, acc_dw);
    tp::copy_to_tp_backward(tp_, s.dln, NC);
    // attention block: x1 = x + dropout(ctx Wo^T + bo), ctx = Attn(ln1 Wqkv^T + bqkv), ln1 = LN(x). The LN2
    // backward forms s.dtmp = dropout'(dres) through the attention output's dropout (site 0).
    ops::layernorm_backward_dropout(exec_, dres, grad(P("ln.weight")), grad(P("ln.bias")), s.dtmp, s.dln,
                                    Act<const T>(a.x1), value(P("ln.weight")), a.ln2_mean, a.ln2_rstd, N, C,
                                    dropout_spec(RngPurpose::HiddenDropout, l, 0, dropout_, a.keep1), hidden_offset);
    tp::reduce_from_tp_backward(tp_, s.dtmp, NC);
    ops::matmul_backward(exec_, s.dctx, grad(P("attention.output.dense.weight")),
                         grad(P("attention.output.dense.bias")), s.dtmp, a.ctx,
                         gemm_weight(P("attention.output.dense.weight")), N, Cl, C, false, acc_dw);
    // Selective recompute: one probability block serves every layer; rebuild layer l's (a.ctx is rewritten with
    // the value it already holds; the out-projection gradient above has read it).
    // Flash attention keeps each layer's row statistics and reads ctx (its output) instead of probabilities.
    const DropoutSpec attn_drop = dropout_spec(RngPurpose::AttentionDropout, l, 0, attention_dropout_, a.attn_keep);
    if (attention_ == AttentionKernel::Flash) {
      ops::flash_attention_backward(exec_, s.dqkv, s.attn_scratch, s.dctx, a.ctx, a.qkv, a.probs.f, in.valid, shape,
                                    attn_drop);
    } else {
      if (recompute_ == Recompute::Selective)
        ops::attention_forward(exec_, a.ctx, a.probs, s.attn_scratch, a.qkv, in.valid, shape, attn_drop);
      ops::attention_backward(exec_, s.dqkv, s.attn_scratch, s.dctx, a.qkv, a.probs, in.valid, shape, attn_drop);
    }
    ops::matmul_backward(exec_, s.dln, grad(P("attention.self.query.weight")), grad(P("attention.self.query.bias")),
                         s.dqkv, a.ln1, gemm_weight(P("attention.self.query.weight")), N, C, 3 * Cl, false, acc_dw);
    tp::copy_to_tp_backward(tp_, s.dln, NC);
    // LN1 backward; s.dtmp = dropout'(dres) through layer l - 1's output dropout (layer 0: the embeddings' dropout
    // below)
    ln_backward(l - 1, grad(P("attention.ln.weight")), grad(P("attention.ln.bias")), s.dln, x,
                value(P("attention.ln.weight")), a.ln1_mean, a.ln1_rstd);
    grads_ready(layer_bounds_[l], layer_bounds_[l + 1]);  // layer l is final
  }
  // embeddings (their gradient in fp32: s.tmp, free since the final LayerNorm's backward read dhidden from it)
  T* demb = s.tmp;
  ops::dropout_backward<T>(exec_, demb, Act<const T>(dres), NC,
                           dropout_spec(RngPurpose::EmbeddingDropout, 0, 0, dropout_, s.emb_keep), hidden_offset);
  ops::position_type_embedding_backward(exec_, grad("bert.embeddings.position_embeddings.weight"),
                                        grad("bert.embeddings.token_type_embeddings.weight"), demb, in.types, B, Tn, C,
                                        config_.type_vocab);
  ops::word_embedding_backward_rows(exec_, grad("bert.embeddings.word_embeddings.weight"), demb, token_rows_view_, C);
  grads_ready(0, layer_bounds_[0]);  // embeddings are final
}

template const float* MegatronBert<float>::encode_forward(const EncoderInputs&, const RngContext&);
template const double* MegatronBert<double>::encode_forward(const EncoderInputs&, const RngContext&);
template void MegatronBert<float>::encode_backward(float*);
template void MegatronBert<double>::encode_backward(double*);

}  // namespace erlangshen
