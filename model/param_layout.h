// The MegatronBERT parameter table (DESIGN §3), with HF MegatronBertForPreTraining names, global shapes
// and tensor-parallel split axes. One table serves the flat buffers, ZeRO, grad norm, checkpoints and export.
#pragma once
#include <string>

#include "runtime/config.h"
#include "runtime/param_table.h"

namespace erlangshen {

// Which heads sit on top of the encoder.
enum class ModelHeads {
  Pretraining,     // MLM (tied decoder) + pooler + SOP  (HF MegatronBertForPreTraining)
  Classification,  // pooler + C-way classifier          (HF MegatronBertForSequenceClassification)
};

// Builds and finalizes the table for one TP rank. Names:
//   bert.embeddings.{word,position,token_type}_embeddings.weight
//   bert.encoder.layer.N.attention.ln.{weight,bias}
//   bert.encoder.layer.N.attention.self.{query,key,value}.weight  then .bias (contiguous: one fused GEMM)
//   bert.encoder.layer.N.attention.output.dense.{weight,bias}
//   bert.encoder.layer.N.ln.{weight,bias}
//   bert.encoder.layer.N.intermediate.dense.{weight,bias}
//   bert.encoder.layer.N.output.dense.{weight,bias}
//   bert.encoder.ln.{weight,bias}, bert.pooler.dense.{weight,bias}
//   cls.predictions.transform.dense.{weight,bias}, cls.predictions.transform.LayerNorm.{weight,bias},
//   cls.predictions.bias, cls.seq_relationship.{weight,bias}          (Pretraining)
//   classifier.{weight,bias}                                          (Classification)
// Init: normal(0, init_std) for weights; output projections (attention.output.dense, output.dense) use
// init_std / sqrt(2 * layers) when scaled_output_init (GPT-2/Megatron); biases 0, LayerNorm 1/0.
ParamTable build_param_table(const ModelConfig& config, ModelHeads heads, int tp_rank, int tp_size);

std::string layer_prefix(int layer);

}  // namespace erlangshen
