// The attention forward in one kernel (ContextOptions::fused_attention_forward): the state it saves is the one
// the unfused attention saves with bf16 scores (attention.cu: S in bf16 and each row's (max, 1 / sum)), so the
// unfused backward runs after it unchanged, but the forward reads Q, K, V once and writes S once, instead of
// writing S, reading it back for the softmax, writing Pd and reading Pd again for the product with V (8 bytes an
// element of the B x NH x T x T tensors, 2 here) in three launches. The algorithm: attention_fused_forward.cu.
#pragma once
#include <cstdint>

#include "runtime/act.h"
#include "runtime/cuda/kernels.h"

namespace erlangshen::cuda {

// Whether the fused forward takes this shape on the current device: head dim 64, 128 or 256, T a multiple of 8,
// and its shared memory (198 KiB at head dim 256) within the device's per-block opt-in limit.
bool fused_attention_forward_supported(const AttentionShape& s);

// out (B, T, NH HS) = dropout(softmax(Q K^T / sqrt(HS), padded keys masked)) V, rounded once into out's storage;
// scores (B, NH, T, T) bf16 = the scaled logits rounded to bf16; stats (B, NH, T) pairs = (max over the valid
// keys of the bf16 logits, 1 / sum of exp(logit - max) over them), (-inf, 0) for a row without a valid key.
// qkv16: (B, T, 3, NH, HS) bf16. Dropout element (b, h, i, j) keyed as attention.cu keys it.
void fused_attention_forward(const Launch& l, Act<float> out, uint16_t* scores, float* stats, const uint16_t* qkv16,
                             const uint8_t* key_valid, const AttentionShape& s, const DropoutSpec& dropout);

}  // namespace erlangshen::cuda
