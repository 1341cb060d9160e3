// The attention backward in one kernel for short sequences (ContextOptions::fused_attention_backward; T <= 128, as
// bert-base's seq 128 pretraining and sentence-pair fine-tuning have it). It starts from the state the unfused
// attention saves with bf16 scores (attention.cu: S in bf16 and each row's (max, 1 / sum); the unfused forward and
// the fused one save the same), and replaces the unfused backward's 4 NH GEMM launches and its row kernel, which
// at T = 128 are small batched GEMMs (T x T x HS a sample) and one pass that writes the B x NH x T x T tensors dP,
// dS and Pd to memory and reads them back, with one block per (sample, head) that keeps all of them in shared
// memory and registers. The algorithm: attention_fused_backward.cu.
#pragma once
#include <cstdint>

#include "runtime/act.h"
#include "runtime/cuda/kernels.h"

namespace erlangshen::cuda {

// Whether the fused backward takes this shape on the current device: head dim 64, 128 or 256, T a multiple of 16 up
// to 128, and its shared memory (4 T (HS + 8) + 2 T (T + 8) bf16: 204 KiB at T 128 and head dim 128) within the
// device's per-block opt-in limit.
bool fused_attention_backward_supported(const AttentionShape& s);

// dqkv (B, T, 3, NH, HS) = the gradient of attention_forward's out w.r.t. qkv, rounded once into dqkv's storage,
// from dout16 (B, T, NH HS) bf16, qkv16 (B, T, 3, NH, HS) bf16 and the saved state: scores (B, NH, T, T) bf16 and
// stats (B, NH, T) pairs (max, 1 / sum), as fused_attention_forward writes them. Dropout as the forward keyed it.
void fused_attention_backward(const Launch& l, Act<float> dqkv, const uint16_t* scores, const float* stats,
                              const uint16_t* qkv16, const uint16_t* dout16, const uint8_t* key_valid,
                              const AttentionShape& s, const DropoutSpec& dropout);

}  // namespace erlangshen::cuda
