// HuggingFace folders <-> checkpoints (DESIGN §6).
//
// export: a checkpoint (any TP layout) -> `model.safetensors` with MegatronBertForPreTraining names (TP shards
// merged, vocab rows cut back to model.vocab_size, `cls.predictions.decoder.{weight,bias}` written as copies of
// the tied word embeddings and MLM bias, as HF's state dict has them), `config.json` (model_type megatron-bert),
// `vocab.txt` and `tokenizer_config.json`. transformers.MegatronBertForPreTraining.from_pretrained loads it.
//
// import: such a folder (ours, or a published one: model.safetensors or a sharded model.safetensors.index.json;
// F32/F16/BF16) -> a TP=1 checkpoint at step 0 without optimizer state, usable by `pretrain` (resumes from it)
// and `finetune` (checkpoint.init). Vocab rows are padded to padded_vocab(1) with inert rows (21128 -> 21248).
#pragma once
#include <string>
#include <vector>

#include "runtime/config.h"

namespace erlangshen::ckpt {

struct ExportReport {
  std::string folder;  // the checkpoint step folder read
  int64_t step = 0;
  size_t tensors = 0;
  uint64_t bytes = 0;
  bool vocab = false;  // vocab.txt written
};

// `vocab_override`: vocab.txt to use when the checkpoint holds none (empty: none).
ExportReport export_hf(const std::string& checkpoint, const std::string& out_dir, const std::string& vocab_override = "");

struct ImportReport {
  std::string checkpoint_folder;  // the step folder written
  ModelConfig model;
  std::string heads;                       // "pretraining" | "classification"
  std::vector<std::string> initialized;    // tensors absent from the HF folder, initialised fresh
  std::vector<std::string> ignored;        // HF tensors with no place in the model
  int64_t padding_rows = 0;
};

// `seed`: initialisation of tensors the folder lacks (e.g. MLM/SOP heads of a bare MegatronBertModel).
ImportReport import_hf(const std::string& hf_dir, const std::string& out_checkpoint, uint64_t seed = 1234);

// ModelConfig from an HF config.json (megatron-bert); throws naming the file on anything else.
ModelConfig model_config_from_hf(const std::string& config_json_path);

}  // namespace erlangshen::ckpt
