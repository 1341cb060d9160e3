// Weights of a fine-tuning run on disk: the parameter table as one safetensors file (HF names, fp32), so the
// best fine-tuned model is a folder `model.safetensors` + `finetune.json` whose tensor names are those of HF
// `MegatronBertForSequenceClassification` (bert.*, classifier.*).
//
// Interim: DESIGN §6 checkpoints (manifest + per-TP-rank shards, issue 6) are not in the tree yet. Until they
// are, `checkpoint.init` accepts what this file can read: a `.safetensors` file, a folder holding
// `model.safetensors` (our fine-tuned folders, `erlangshen export` output) or `model-tp00.safetensors` of a
// single-TP-rank checkpoint step, or a checkpoint directory whose `latest` names a step folder. When the
// checkpoint library lands, load_weights_by_name() is the one function to route through it.
//
// safetensors: u64 little-endian header length N, N bytes of JSON {name: {dtype, shape, data_offsets}},
// then the raw little-endian tensor bytes.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/param_table.h"

namespace erlangshen {

// Writes every entry of `table` (TP size 1) from `params` to `path` as F32 (temporary name, then rename).
void save_safetensors(const std::string& path, const ParamTable& table, const float* params,
                      const nlohmann::json& metadata = nlohmann::json::object());

struct WeightLoadReport {
  std::string file;                  // the safetensors file read
  std::vector<std::string> loaded;   // table entries filled from the file
  std::vector<std::string> missing;  // table entries absent from the file (left as they were)
  std::vector<std::string> unused;   // file tensors the table has no entry for (e.g. MLM/SOP heads)
  std::vector<std::string> resized;  // loaded with a different number of rows (padded word embeddings)
};

// Resolves `path` (file, folder or checkpoint dir, see above) to a safetensors file; throws Error naming it.
std::string resolve_weights_file(const std::string& path);

// Copies tensors into `params` by name. Shapes must match, except that the rows of
// bert.embeddings.word_embeddings.weight may differ (vocab padding 21128 <-> 21248): the common rows are
// copied. F32, F64 and BF16 tensors are accepted. Entries whose name starts with a prefix in `required`
// must be present, or the load fails listing them.
WeightLoadReport load_weights_by_name(const std::string& path, const ParamTable& table, float* params,
                                      const std::vector<std::string>& required = {"bert."});

}  // namespace erlangshen
