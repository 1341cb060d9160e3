// Saved activations and backward scratch of MegatronBert, carved from one arena per (B, T) shape.
// Private to model/*.cpp.
#pragma once
#include <vector>

#include "model/megatron_bert.h"

namespace erlangshen {

// Tensors marked [act] are Act<T> (runtime/act.h): stored in T, or in bf16 when the model's activation storage is
// bf16 (set_activation_storage). Those marked [res] are the residual stream, stored in T or in bf16 by
// set_residual_storage. Both are read only by GEMMs and element-wise ops, never by the host.
template <class T>
struct MegatronBert<T>::LayerActs {
  Act<T> ln1;              // (N, C)   LN(x) before attention [act]
  T *ln1_mean, *ln1_rstd;  // (N)
  Act<T> qkv;              // (N, 3 * C_local)  [q | k | v] of this rank's heads [act]
  Act<T> probs;            // (B, NH_local, T, T) softmax before dropout [act]; flash attention: its row statistics
                           // (B, NH_local, T, 2), always T
  Act<T> ctx;              // (N, C_local) attention output before the row-parallel projection [act]
  Act<T> x1;               // (N, C)   residual after attention [res]
  Act<T> ln2;              // (N, C)   LN(x1) before the MLP [act]
  T *ln2_mean, *ln2_rstd;  // (N)
  Act<T> pre;              // (N, F_local) FFN-in output + bias (pre-activation) [act]
  Act<T> act;              // (N, F_local) GeLU(pre) [act]
  Act<T> x2;               // (N, C)   residual after the MLP = next layer's input [res]
  // dropout keep masks stored by forward for backward (CPU; nullptr on CUDA, which redraws)
  uint8_t* attn_keep;      // (B, NH_local, T, T)
  uint8_t *keep1, *keep2;  // (N, C)   after the attention / MLP output projections
};

// A LayerNorm's output and statistics, and its parameters: where a fused residual add + LayerNorm writes.
template <class T>
struct MegatronBert<T>::LayerNormOut {
  Act<T> out;      // (N, C)
  T *mean, *rstd;  // (N)
  const T *weight, *bias;
};

template <class T>
struct MegatronBert<T>::Acts {
  int B = 0, T_ = 0;
  Act<T> emb;              // (N, C) embeddings after dropout = layer 0 input [res]
  uint8_t* emb_keep;       // (N, C) its dropout keep mask (CPU; nullptr on CUDA)
  std::vector<LayerActs> layers;
  T* hidden;               // (N, C) final LayerNorm output
  T *lnf_mean, *lnf_rstd;  // (N)
  T* tmp;                  // (N, C) embedding sum; the row-parallel outputs when row_out is it; in the backward the
                           // gradient at the encoder output (the heads accumulate it) and then the embeddings'
                           // gradient
  Act<T> row_out;          // (N, C) row-parallel layer outputs: bf16 under bf16 storage with TP 1 [act], else tmp
                           // (the TP all-reduce runs on T)
  // backward scratch
  Act<T> dres;             // (N, C) residual-stream gradient (accumulated) [res]
  Act<T> dln;              // (N, C) a LayerNorm's input gradient (the QKV / FFN-in dgrad output): bf16 under bf16
                           // storage with TP 1 [act], else T (the TP all-reduce runs on T)
  Act<T> dtmp;             // (N, C) gradient of a row-parallel output (dropout backward -> GEMM dout) [act]
  Act<T> dctx;             // (N, C_local) [act]
  Act<T> dqkv;             // (N, 3 * C_local) [act]
  Act<T> dact;             // (N, F_local) [act]
  T* attn_scratch;         // attention_scratch_elems
  // pooler / SOP / classifier
  int32_t* cls_index;      // (B) flat index of each sample's first token
  T *pool_in, *pool_pre, *pooled, *pool_drop;  // (B, C)
  T *dpool_a, *dpool_b;    // (B, C)
  T* head_logits;          // (B, max(2, num_classes))
  T *head_rowmax, *head_sumexp, *head_target, *head_dloss;  // (B)
  int32_t* head_labels;    // (B)
  // inputs staged from the host on CUDA (unused on the CPU, where the host arrays are read directly)
  int32_t *in_ids, *in_types;  // (N)
  uint8_t* in_valid;           // (N)
  // the token-rows index of the ids for the word-embedding backward (runtime/token_rows.h), staged on CUDA
  int32_t *tok_row, *tok_start, *tok_tokens;  // (min(N, V_local)), (min(N, V_local) + 1), (N)
  // MLM head (sized by M in the head arena)
  T *mlm_g, *mlm_t, *mlm_a, *mlm_u;  // (M, C)
  T* mlm_dt;                         // (M, C) the transform's gradient (backward)
  T *mlm_mean, *mlm_rstd;            // (M)
  T* mlm_logits;                     // (M, V_local)
  T* mlm_stats;                      // (3M): rowmax | sumexp | target logit
  T* mlm_dloss;                      // (M)
  int32_t *mlm_positions, *mlm_labels;  // (M) staged on CUDA
};

}  // namespace erlangshen
