// MegatronBert heads: MLM (vocab-parallel, masked positions only), pooler + SOP, pooler + classifier.
//   MLM:  u = LN(gelu(h[masked] Wt^T + bt));  logits_i = u Wword_i^T + b_i (this rank's vocab shard)
//         loss_m = log sum_v exp(l_mv) - l_m,target   with max / sum-exp / target logit all-reduced over TP;
//         v runs over the real vocabulary (padding rows of the embedding are not classes)
//   pooler: pooled = tanh(h[:, 0] Wp^T + bp);  SOP logits = pooled Ws^T + bs;  classifier = dropout(pooled) Wc^T + bc
#include <algorithm>
#include <cmath>

#include "model/activations.h"
#include "parallel/mappings.h"

namespace erlangshen {

template <class T>
void MegatronBert<T>::pooler_forward(const T* hidden, int B, int Tn) {
  Acts& s = *acts_;
  const int C = config_.hidden;
  host_index_.resize(B);
  for (int b = 0; b < B; ++b) host_index_[b] = b * Tn;
  copy_from_host(exec_, s.cls_index, host_index_.data(), B);
  ops::gather_rows(exec_, s.pool_in, hidden, s.cls_index, B, C);
  ops::matmul_forward(exec_, s.pool_pre, s.pool_in, value("bert.pooler.dense.weight"), value("bert.pooler.dense.bias"),
                      B, C, C);
  ops::tanh_forward(exec_, s.pooled, s.pool_pre, static_cast<int64_t>(B) * C);
}

// dpooled (B, C) -> accumulated into dhidden rows of the first tokens. Clobbers dpool_a/dpool_b.
template <class T>
void MegatronBert<T>::pooler_backward(const T* dpooled, T* dhidden, int B, int Tn) {
  Acts& s = *acts_;
  const int C = config_.hidden;
  ops::tanh_backward(exec_, s.dpool_b, dpooled, s.pooled, static_cast<int64_t>(B) * C);
  ops::matmul_backward(exec_, s.dpool_a, grad("bert.pooler.dense.weight"), grad("bert.pooler.dense.bias"), s.dpool_b,
                       s.pool_in, value("bert.pooler.dense.weight"), B, C, C);
  ops::scatter_add_rows(exec_, dhidden, s.dpool_a, s.cls_index, B, C);
}

template <class T>
void MegatronBert<T>::mlm_transform_forward(const T* hidden, const int32_t* positions, int M) {
  Acts& s = *acts_;
  const int C = config_.hidden;
  ops::gather_rows(exec_, s.mlm_g, hidden, positions, M, C);
  ops::matmul_forward(exec_, s.mlm_t, s.mlm_g, value("cls.predictions.transform.dense.weight"),
                      value("cls.predictions.transform.dense.bias"), M, C, C);
  ops::bias_gelu_forward(exec_, s.mlm_a, s.mlm_t, static_cast<const T*>(nullptr), M, C, config_.activation);
  ops::layernorm_forward(exec_, s.mlm_u, s.mlm_mean, s.mlm_rstd, s.mlm_a,
                         value("cls.predictions.transform.LayerNorm.weight"),
                         value("cls.predictions.transform.LayerNorm.bias"), M, C, config_.layernorm_eps);
}

template <class T>
PretrainLosses MegatronBert<T>::pretrain_forward_backward(const PretrainBatch& batch, const RngContext& rng,
                                                          double mlm_denominator, double sop_denominator,
                                                          bool backward) {
  ERL_CHECK(heads_ == ModelHeads::Pretraining, "pretraining step on a model without pretraining heads");
  const int B = batch.batch, Tn = batch.seq_len, C = config_.hidden;
  // Classes of the MLM softmax: the real vocabulary only. Embedding rows are padded to a multiple of 128 x TP,
  // so the padding differs between layouts; leaving it out of the softmax keeps every layout's loss identical.
  const int Vl = std::clamp(config_.vocab_size - vocab_start_, 0, vocab_local_);
  const int M = static_cast<int>(batch.mlm_positions.size());
  ERL_CHECK(static_cast<int>(batch.input_ids.size()) == B * Tn, "batch input_ids has the wrong size");
  EncoderInputs in{B, Tn, batch.input_ids.data(), batch.token_types.data(), batch.attention_mask.data()};
  const T* hidden = encode_forward(in, rng);
  ensure_head_capacity(std::max(M, 1));
  Acts& s = *acts_;
  PretrainLosses out;
  // Masked positions and their labels where the ops run (the host arrays themselves on the CPU).
  const int32_t* positions = stage_input(exec_, s.mlm_positions, batch.mlm_positions.data(), M);
  const int32_t* labels = stage_input(exec_, s.mlm_labels, batch.mlm_labels.data(), M);

  // ---- MLM on masked positions ----
  T* rowmax = s.mlm_stats;
  T* sumexp = s.mlm_stats + M;
  T* target = s.mlm_stats + 2 * M;
  if (M > 0) {
    mlm_transform_forward(hidden, positions, M);
    tp::copy_to_tp_forward(tp_, s.mlm_u, static_cast<size_t>(M) * C);
    if (Vl > 0)  // a TP shard made only of padding rows has no classes
      ops::matmul_forward(exec_, s.mlm_logits, s.mlm_u, value("bert.embeddings.word_embeddings.weight"),
                          value("cls.predictions.bias"), M, C, Vl);
    ops::ce_rowmax(exec_, rowmax, s.mlm_logits, M, Vl);
    if (tp_.size() > 1) tp_.all_reduce(rowmax, M, ReduceOp::Max);
    ops::ce_sumexp_target(exec_, sumexp, target, s.mlm_logits, rowmax, labels, M, Vl, vocab_start_);
    if (tp_.size() > 1) tp_.all_reduce(sumexp, 2 * static_cast<size_t>(M), ReduceOp::Sum);
    // The (3M) statistics on the host: rowmax | sumexp | target logit.
    const T* st = host_view(exec_, s.mlm_stats, 3 * static_cast<size_t>(M), host_stats_[0]);
    for (int m = 0; m < M; ++m) {
      out.mlm_sum += std::log(static_cast<double>(st[M + m])) + st[m] - st[2 * M + m];
      out.mlm_correct += st[2 * M + m] >= st[m];
    }
  }
  out.mlm_count = M;

  // ---- pooler + SOP ----
  pooler_forward(hidden, B, Tn);
  ops::matmul_forward(exec_, s.head_logits, s.pooled, value("cls.seq_relationship.weight"),
                      value("cls.seq_relationship.bias"), B, C, 2);
  ERL_CHECK(static_cast<int>(batch.sop_labels.size()) == B, "batch sop_labels has the wrong size");
  copy_from_host(exec_, s.head_labels, batch.sop_labels.data(), B);
  ops::ce_rowmax(exec_, s.head_rowmax, s.head_logits, B, 2);
  ops::ce_sumexp_target(exec_, s.head_sumexp, s.head_target, s.head_logits, s.head_rowmax, s.head_labels, B, 2, 0);
  const T* sop_rowmax = host_view(exec_, s.head_rowmax, B, host_stats_[0]);
  const T* sop_sumexp = host_view(exec_, s.head_sumexp, B, host_stats_[1]);
  const T* sop_target = host_view(exec_, s.head_target, B, host_stats_[2]);
  for (int b = 0; b < B; ++b) {
    out.sop_sum += std::log(static_cast<double>(sop_sumexp[b])) + sop_rowmax[b] - sop_target[b];
    out.sop_correct += sop_target[b] >= sop_rowmax[b];
  }
  out.sop_count = B;
  if (!backward) return out;
  begin_backward();

  // ---- backward ----
  T* dhidden = s.tmp;
  ops::fill(exec_, dhidden, static_cast<int64_t>(B) * Tn * C, T(0));
  if (M > 0) {
    ops::fill(exec_, s.mlm_dloss, M, static_cast<T>(1.0 / mlm_denominator));
    ops::ce_backward(exec_, s.mlm_logits, s.mlm_logits, rowmax, sumexp, labels, s.mlm_dloss, M, Vl, vocab_start_);
    // dWword and dbias first (they read u), then dU into u's own buffer (dU = dlogits Wword does not read u).
    T* du = s.mlm_u;
    if (Vl > 0) {
      ops::matmul_backward(exec_, static_cast<T*>(nullptr), grad("bert.embeddings.word_embeddings.weight"),
                           grad("cls.predictions.bias"), s.mlm_logits, s.mlm_u,
                           value("bert.embeddings.word_embeddings.weight"), M, C, Vl);
      ops::matmul_backward(exec_, du, static_cast<T*>(nullptr), static_cast<T*>(nullptr), s.mlm_logits, s.mlm_u,
                           value("bert.embeddings.word_embeddings.weight"), M, C, Vl);
    } else {
      ops::fill(exec_, du, static_cast<int64_t>(M) * C, T(0));
    }
    tp::copy_to_tp_backward(tp_, du, static_cast<size_t>(M) * C);
    // LayerNorm backward accumulates: da must start at 0; `a` (its input) is still needed, so use a scratch:
    // dt := 0, dt += dLN/da, then dt = dt * gelu'(t) in place.
    T* dt = s.mlm_dt;
    ops::fill(exec_, dt, static_cast<int64_t>(M) * C, T(0));
    ops::layernorm_backward(exec_, dt, grad("cls.predictions.transform.LayerNorm.weight"),
                            grad("cls.predictions.transform.LayerNorm.bias"), du, s.mlm_a,
                            value("cls.predictions.transform.LayerNorm.weight"), s.mlm_mean, s.mlm_rstd, M, C);
    ops::bias_gelu_backward(exec_, dt, static_cast<T*>(nullptr), dt, s.mlm_t, M, C, config_.activation);
    ops::matmul_backward(exec_, s.mlm_a, grad("cls.predictions.transform.dense.weight"),
                         grad("cls.predictions.transform.dense.bias"), dt, s.mlm_g,
                         value("cls.predictions.transform.dense.weight"), M, C, C);
    ops::scatter_add_rows(exec_, dhidden, s.mlm_a, positions, M, C);
  }
  ops::fill(exec_, s.head_dloss, B, static_cast<T>(1.0 / sop_denominator));
  ops::ce_backward(exec_, s.head_logits, s.head_logits, s.head_rowmax, s.head_sumexp, s.head_labels, s.head_dloss, B, 2, 0);
  ops::matmul_backward(exec_, s.pool_drop, grad("cls.seq_relationship.weight"), grad("cls.seq_relationship.bias"),
                       s.head_logits, s.pooled, value("cls.seq_relationship.weight"), B, C, 2);
  pooler_backward(s.pool_drop, dhidden, B, Tn);
  encode_backward(dhidden);
  return out;
}

template <class T>
void MegatronBert<T>::classify_forward(const EncoderInputs& in, const RngContext& rng, T* logits) {
  ERL_CHECK(heads_ == ModelHeads::Classification, "classification on a model without a classifier head");
  const T* hidden = encode_forward(in, rng);
  Acts& s = *acts_;
  const int B = in.B, C = config_.hidden, K = config_.num_classes;
  pooler_forward(hidden, B, in.T);
  ops::dropout_residual_forward(exec_, s.pool_drop, static_cast<const T*>(nullptr), s.pooled,
                                static_cast<int64_t>(B) * C, dropout_spec(RngPurpose::ClassifierDropout, 0, 0, dropout_),
                                rng.sample_base * C);
  ops::matmul_forward(exec_, logits, s.pool_drop, value("classifier.weight"), value("classifier.bias"), B, C, K);
}

template <class T>
void MegatronBert<T>::classify_backward(const T* dlogits) {
  begin_backward();
  Acts& s = *acts_;
  const int B = in_.B, Tn = in_.T, C = config_.hidden, K = config_.num_classes;
  T* dhidden = s.tmp;
  ops::fill(exec_, dhidden, static_cast<int64_t>(B) * Tn * C, T(0));
  ops::matmul_backward(exec_, s.dpool_a, grad("classifier.weight"), grad("classifier.bias"), dlogits, s.pool_drop,
                       value("classifier.weight"), B, C, K);
  // pool_drop (the classifier input) is no longer needed: it takes dpooled, since pooler_backward uses
  // dpool_a/dpool_b as scratch.
  ops::dropout_backward(exec_, s.pool_drop, s.dpool_a, static_cast<int64_t>(B) * C,
                        dropout_spec(RngPurpose::ClassifierDropout, 0, 0, dropout_), rng_.sample_base * C);
  pooler_backward(s.pool_drop, dhidden, B, Tn);
  encode_backward(dhidden);
}

template <class T>
void MegatronBert<T>::mlm_logits(const EncoderInputs& in, const int32_t* positions, int M, T* out) {
  ERL_CHECK(heads_ == ModelHeads::Pretraining, "MLM logits need the pretraining heads");
  const T* hidden = encode_forward(in, RngContext{});
  ensure_head_capacity(std::max(M, 1));
  Acts& s = *acts_;
  const int C = config_.hidden;
  positions = stage_input(exec_, s.mlm_positions, positions, M);
  mlm_transform_forward(hidden, positions, M);
  ops::matmul_forward(exec_, out, s.mlm_u, value("bert.embeddings.word_embeddings.weight"), value("cls.predictions.bias"),
                      M, C, vocab_local_);
}

#define ERL_INSTANTIATE(T)                                                                                         \
  template void MegatronBert<T>::pooler_forward(const T*, int, int);                                              \
  template void MegatronBert<T>::pooler_backward(const T*, T*, int, int);                                         \
  template PretrainLosses MegatronBert<T>::pretrain_forward_backward(const PretrainBatch&, const RngContext&, double, \
                                                                     double, bool);                               \
  template void MegatronBert<T>::classify_forward(const EncoderInputs&, const RngContext&, T*);                   \
  template void MegatronBert<T>::classify_backward(const T*);                                                      \
  template void MegatronBert<T>::mlm_logits(const EncoderInputs&, const int32_t*, int, T*);
ERL_INSTANTIATE(float)
ERL_INSTANTIATE(double)
#undef ERL_INSTANTIATE

}  // namespace erlangshen
