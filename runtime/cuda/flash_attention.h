// Fused ("flash") multi-head self-attention: the T x T scores and probabilities never go through device memory.
// Same arithmetic contract as attention.cu in MathMode::BF16 (bf16 Q/K/V, P and dO operands, fp32 accumulation,
// softmax in fp32 with padded keys masked, Philox dropout with the same global element index, so the same mask
// bits), computed tile by tile on the tensor cores (runtime/cuda/flash_attention.cu for the algorithm). Instead of
// the probabilities it saves two floats per query row, the row max m and 1 / sum (stats, (B, NH, T, 2)), from which
// the backward recomputes P exactly as the forward formed it. The backward needs the forward's output O
// (D_i = dO_i . O_i) and writes dQ, dK, dV without atomics (deterministic).
// Status: tested against the CPU backend on the CUDA emulation (tests/gpu/test_cuda_flash_attention.cpp); not yet
// run or timed on a GPU, and not yet used by the model.
#pragma once
#include <cstdint>

#include "runtime/act.h"
#include "runtime/cuda/kernels.h"

namespace erlangshen::cuda {

// Whether the flash kernels take this shape on the current device: HS in {64, 128, 256}, MathMode::BF16, and the
// kernels' shared memory within the device's per-block opt-in limit (about 180 KiB at HS 256: an H100, not an A100).
bool flash_attention_supported(const Launch& l, const AttentionShape& s);

// Floats of scratch: bf16 copies of an fp32 qkv and dout (none for bf16 storage) and D (B NH T).
int64_t flash_attention_scratch_elems(const AttentionShape& s);

// out (B, T, NH HS) = dropout(softmax(Q K^T / sqrt(HS), padded keys masked)) V;  stats (B, NH, T, 2) = (m, 1/sum).
void flash_attention_forward(Launch l, Act<float> out, float* stats, float* scratch, Act<const float> qkv,
                             const uint8_t* key_valid, const AttentionShape& s, const DropoutSpec& dropout);

// dqkv (B, T, 3, NH, HS) from dout and the forward's out and stats.
void flash_attention_backward(Launch l, Act<float> dqkv, float* scratch, Act<const float> dout, Act<const float> out,
                              Act<const float> qkv, const float* stats, const uint8_t* key_valid,
                              const AttentionShape& s, const DropoutSpec& dropout);

}  // namespace erlangshen::cuda
